terraform {
  # optional() object attributes with defaults (1.3), checks and preconditions (1.5).
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 5.67 or later (5.46 brought Lambda logging_config, DynamoDB deletion protection and the SQS
      # redrive resources; 5.67 aws_lambda_function_recursion_config). infra/README.md says the same.
      version = "~> 5.67"
    }
  }
}

provider "aws" {
  # null: the region comes from AWS_REGION / the profile, like every other AWS tool.
  region = var.aws_region

  default_tags {
    # Every taggable resource carries these (cost allocation: activate the tag keys in Billing).
    tags = local.tags
  }
}
