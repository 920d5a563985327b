"""NXCloud WhatsApp template sender: the first-party code shared by the Lambda function and the project's tools.

Modules, one concern each: ``models`` (the message), ``phone`` (numbers), ``languages`` (template language codes),
``signing`` (the signature rule), ``error_codes`` (what each NXCloud code means), ``exceptions``, ``config``
(environment), ``credentials`` (the secret), ``client`` (HTTP) and ``sender`` (one send, end to end); for the
pre-flight template check, ``templates`` (what a template needs, and the rules), ``template_client`` (getTemplate)
and ``catalogue`` (an account's templates, kept for a while).
"""
