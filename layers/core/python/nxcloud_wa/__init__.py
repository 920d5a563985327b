"""NXCloud WhatsApp template sender: the first-party code shared by the three functions and the project's tools.

Modules, one concern each:

* the message and a send: ``models`` (the message), ``phone`` (numbers), ``languages`` (template language codes),
  ``signing`` (the signature rule), ``config`` (environment), ``credentials`` (the secret), ``client`` (HTTP),
  ``sender`` (one send, end to end);
* failures: ``error_codes`` (the one table: what each code, status and condition means), ``exceptions`` (the
  hierarchy), ``failures`` (the failure value, and every exception's mapping to one);
* the pre-flight template check: ``templates`` (what a template needs, and the rules), ``template_client``
  (getTemplate), ``catalogue`` (an account's templates, kept for a while);
* delivery tracking: ``callbacks`` (NXCloud's callbacks), ``statuses`` (the lifecycle's order), ``messages_table``
  (the messages table's items, encoded and decoded), ``timeline`` (its reads and writes), ``idempotency_keys`` (a
  key's idempotency record: the message it was sent as, read by the query API);
* audience rules: ``audience`` (what opts a recipient out or in, and what an entry suppresses), ``suppressions``
  (the suppression list's table), ``suppression_sources`` (the webhook: whose entry a callback changes, and storing
  it), ``retries`` (Meta's marketing limit, 131049: the retry's schedule, its marker, its checks);
* campaigns: ``campaigns`` (statuses and their moves, row states, counts, a row's key and queue body),
  ``campaigns_table`` (the campaigns table: campaigns, checkpoints, counts, rows' outcomes), ``campaign_report`` (the
  report: the planner's row log merged with the rows' outcomes), ``campaign_state`` (the engine's objects in the
  bucket: seen numbers, row logs, held rows), ``audience_file`` (an audience file read as a stream, with resumable
  checkpoints), ``audience_rows`` (its columns against the template, each row's message, duplicate numbers),
  ``quiet_hours`` (the recipient's night);
* plumbing: ``dynamo`` (DynamoDB items, errors, batch reads), ``sqs`` (text and attributes SQS takes),
  ``s3`` (a missing object's error codes),
  ``telemetry`` (the functions' Logger and Metrics).
"""
