"""The whole stack on 127.0.0.1 without Docker or an AWS account: moto for AWS, the simulator for NXCloud."""
