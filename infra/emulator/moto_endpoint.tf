# Copied, with moto_provider_override.tf, into a working copy of infra/ under build/terraform/ by
# tools/terraform_local.py (make infra-check, make infra-apply-local). Terraform never reads this
# folder when run in infra/: what users deploy is unchanged.

variable "moto_endpoint" {
  description = "URL of the moto server every AWS service is sent to, e.g. http://127.0.0.1:5000."
  type        = string

  validation {
    condition     = can(regex("^http://(127\\.0\\.0\\.1|localhost):[0-9]+$", var.moto_endpoint))
    error_message = "moto_endpoint must be a local http URL with a port."
  }
}
