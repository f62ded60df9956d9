# The query API's pagination-token secret (HMAC-SHA256 key). query_api reads it once per
# execution environment, at cold start (CACHESYNC_API_TOKEN_SECRET_ID = the secret's ARN); it
# never appears in the function's environment, in plans or in logs beyond Terraform's state.
#
# The first value is drawn by Secrets Manager itself (GetRandomPassword) when the secret is
# created; later applies never change it (ignore_changes): a new value would invalidate every
# pagination token in flight. To rotate: put a new value (aws secretsmanager put-secret-value),
# then let execution environments recycle (or update the function): tokens issued before stop
# verifying, which clients see as a 400 asking to run the query again.

data "aws_secretsmanager_random_password" "api_token" {
  password_length     = 64
  exclude_punctuation = true
}

resource "aws_secretsmanager_secret" "api_token" {
  #checkov:skip=CKV2_AWS_57:Automatic rotation would invalidate every pagination token in flight at a moment nobody chose; rotation is a documented manual step (infra/README.md).
  #checkov:skip=CKV_AWS_149:Encrypted with var.kms_key_arn when one is given, else with the AWS managed key of Secrets Manager, like the tables.
  name                    = "${var.name_prefix}/api-token-secret"
  description             = "Signs the query API's pagination tokens (HMAC-SHA256); read by ${local.function_names["query_api"]} at cold start"
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = var.api_token_secret_recovery_window_days
}

resource "aws_secretsmanager_secret_version" "api_token" {
  secret_id     = aws_secretsmanager_secret.api_token.id
  secret_string = data.aws_secretsmanager_random_password.api_token.random_password

  lifecycle {
    # The data source draws a new value on every plan: only the first one is ever stored.
    ignore_changes = [secret_string]
  }
}
