# The aws provider pointed at a moto server (merged into infra/versions.tf's provider block in a
# working copy under build/terraform/; see moto_endpoint.tf). Credentials are dummies passed in
# the environment by tools/terraform_local.py, never written here.

provider "aws" {
  # Every service infra/ uses (data sources included), to the one moto server.
  endpoints {
    apigateway     = var.moto_endpoint
    cloudwatch     = var.moto_endpoint
    dynamodb       = var.moto_endpoint
    events         = var.moto_endpoint
    iam            = var.moto_endpoint
    kms            = var.moto_endpoint
    lambda         = var.moto_endpoint
    logs           = var.moto_endpoint
    s3             = var.moto_endpoint
    secretsmanager = var.moto_endpoint
    sqs            = var.moto_endpoint
    sts            = var.moto_endpoint
  }

  # moto answers STS, but nothing here may reach AWS: no credential check against the real STS,
  # no EC2 metadata lookup, no check that the region exists in the provider's list.
  skip_credentials_validation = true
  skip_metadata_api_check     = true
  skip_region_validation      = true
  skip_requesting_account_id  = true

  # moto serves every bucket on one host: no virtual-hosted bucket.host names.
  s3_use_path_style = true
}
