# The query API: an API Gateway REST API whose every path goes to query_api (Lambda proxy,
# payload 1.0), one stage with access logs, X-Ray and stage-wide throttling.
#
# Why a REST API and not an HTTP API (shared/cachesync/api/app.py says the same): per-method
# throttling and usage plans, AWS WAF, access logs and stage variables are REST API features, and
# payload 1.0 keeps repeated query parameters (status=a&status=b) as lists, which the resolver
# (Powertools' APIGatewayRestResolver) reads. Authentication is the function's own (API keys in
# the keys table, Authorization: Bearer or X-Api-Key): API Gateway authorizes nothing itself.
#
# Routing: "/{proxy+}" (every path under the root) and the root itself, method ANY, both to the
# function. The routes start with /v1 in the code, so the stage's invoke URL (output api_url) is
# the base URL clients put /v1/... after; unknown paths get the API's own RFC 9457 404.

resource "aws_api_gateway_rest_api" "query" {
  name        = "${var.name_prefix}-query-api"
  description = "cachesync query API: query, read and write documents (routes under /v1)"

  endpoint_configuration {
    types = ["REGIONAL"]
  }

  lifecycle {
    # A replaced API (a change that forces one) serves until its successor exists.
    create_before_destroy = true
  }
}

resource "aws_api_gateway_resource" "proxy" {
  rest_api_id = aws_api_gateway_rest_api.query.id
  parent_id   = aws_api_gateway_rest_api.query.root_resource_id
  path_part   = "{proxy+}"
}

locals {
  # Resource id -> what it is: the root and the greedy proxy below it.
  api_resources = {
    root  = aws_api_gateway_rest_api.query.root_resource_id
    proxy = aws_api_gateway_resource.proxy.id
  }
}

resource "aws_api_gateway_method" "query" {
  #checkov:skip=CKV_AWS_59:The function authenticates every route but /v1/health, /v1/openapi.json and /v1/docs with the API keys of the keys table (Bearer or X-Api-Key); an API Gateway authorizer would add a second, different key check.
  #checkov:skip=CKV2_AWS_53:Request validation is the function's: pydantic models, answered with RFC 9457 problem bodies (a gateway validator would answer in another format).
  for_each = local.api_resources

  rest_api_id   = aws_api_gateway_rest_api.query.id
  resource_id   = each.value
  http_method   = "ANY"
  authorization = "NONE"
}

resource "aws_api_gateway_integration" "query" {
  for_each = local.api_resources

  rest_api_id             = aws_api_gateway_rest_api.query.id
  resource_id             = each.value
  http_method             = aws_api_gateway_method.query[each.key].http_method
  type                    = "AWS_PROXY"
  integration_http_method = "POST" # Lambda is always invoked with POST
  uri                     = aws_lambda_function.function["query_api"].invoke_arn
}

resource "aws_api_gateway_deployment" "query" {
  rest_api_id = aws_api_gateway_rest_api.query.id
  description = "Routes and integrations of the query API"

  # A new deployment whenever the routing changes (a deployment is a snapshot).
  triggers = {
    redeployment = sha1(jsonencode([
      aws_api_gateway_resource.proxy.id,
      [for name in sort(keys(local.api_resources)) : aws_api_gateway_method.query[name].id],
      [for name in sort(keys(local.api_resources)) : aws_api_gateway_integration.query[name].id],
    ]))
  }

  lifecycle {
    create_before_destroy = true
  }

  depends_on = [aws_api_gateway_integration.query]
}

resource "aws_api_gateway_stage" "query" {
  #checkov:skip=CKV_AWS_120:API Gateway's cache is keyed without the caller's tenancy; the function keeps a tenancy-aware memory cache instead (CACHESYNC_API_CACHE_TTL_SECONDS).
  #checkov:skip=CKV2_AWS_51:Clients authenticate with API keys over TLS; no backend needs a client certificate from API Gateway (the integration is Lambda).
  #checkov:skip=CKV2_AWS_29:WAF is a per-organisation choice (web ACLs, managed rule groups, costs): associate a web ACL with this stage's ARN (output api_stage_arn) outside this configuration.
  rest_api_id          = aws_api_gateway_rest_api.query.id
  deployment_id        = aws_api_gateway_deployment.query.id
  stage_name           = var.api_stage_name
  description          = "The query API (routes under /v1)"
  xray_tracing_enabled = true

  # One JSON line per request. No header is logged: Authorization and X-Api-Key carry keys.
  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.api_access.arn
    format = jsonencode({
      requestId          = "$context.requestId"
      extendedRequestId  = "$context.extendedRequestId"
      requestTime        = "$context.requestTime"
      sourceIp           = "$context.identity.sourceIp"
      userAgent          = "$context.identity.userAgent"
      httpMethod         = "$context.httpMethod"
      path               = "$context.path"
      resourcePath       = "$context.resourcePath"
      protocol           = "$context.protocol"
      status             = "$context.status"
      responseLength     = "$context.responseLength"
      responseLatency    = "$context.responseLatency"
      integrationLatency = "$context.integration.latency"
      integrationStatus  = "$context.integration.status"
      errorMessage       = "$context.error.message"
      xrayTraceId        = "$context.xrayTraceId"
    })
  }

  depends_on = [aws_api_gateway_account.cloudwatch]
}

# Stage-wide throttling and CloudWatch metrics for every method. Execution logs at ERROR only
# (integration failures such as a missing invoke permission; API Gateway redacts authorization
# headers there), never request and response bodies (data_trace_enabled).
resource "aws_api_gateway_method_settings" "all" {
  #checkov:skip=CKV_AWS_225:API Gateway's cache is keyed without the caller's tenancy; the function keeps a tenancy-aware memory cache instead (CACHESYNC_API_CACHE_TTL_SECONDS).
  rest_api_id = aws_api_gateway_rest_api.query.id
  stage_name  = aws_api_gateway_stage.query.stage_name
  method_path = "*/*"

  settings {
    metrics_enabled        = true
    logging_level          = "ERROR"
    data_trace_enabled     = false
    throttling_rate_limit  = var.api_throttle_rate_limit
    throttling_burst_limit = var.api_throttle_burst_limit
  }
}

# API Gateway may invoke query_api, from this API's stage only (any method, any path).
resource "aws_lambda_permission" "query_api_from_api_gateway" {
  statement_id  = "AllowQueryApiStage"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.function["query_api"].function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_api_gateway_rest_api.query.execution_arn}/${var.api_stage_name}/*/*"
}

# ------------------------------------------------------------------ access logs

resource "aws_cloudwatch_log_group" "api_access" {
  #checkov:skip=CKV_AWS_338:Retention is an operator choice (var.log_retention_days, default 90 days); these are operational logs, not audit records.
  name              = "/aws/apigateway/${var.name_prefix}-query-api/access"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

# API Gateway writes REST API access logs through one account-wide role per region. Only with
# manage_api_gateway_account: the setting is shared by every API of the account.
data "aws_iam_policy_document" "api_gateway_assume_role" {
  statement {
    sid     = "ApiGatewayAssumesRole"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["apigateway.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "api_gateway_cloudwatch" {
  count = var.manage_api_gateway_account ? 1 : 0

  name               = "${var.name_prefix}-api-gateway-cloudwatch"
  description        = "API Gateway writes REST API logs to CloudWatch Logs (account setting)"
  assume_role_policy = data.aws_iam_policy_document.api_gateway_assume_role.json
}

# AWS's managed policy for exactly this role (API Gateway developer guide, "Set up CloudWatch
# logging for REST APIs"): API Gateway creates log groups it names itself.
resource "aws_iam_role_policy_attachment" "api_gateway_cloudwatch" {
  count = var.manage_api_gateway_account ? 1 : 0

  role       = aws_iam_role.api_gateway_cloudwatch[0].name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"
}

resource "aws_api_gateway_account" "cloudwatch" {
  count = var.manage_api_gateway_account ? 1 : 0

  cloudwatch_role_arn = aws_iam_role.api_gateway_cloudwatch[0].arn

  depends_on = [aws_iam_role_policy_attachment.api_gateway_cloudwatch]
}
