# Facts about the account and region, and names derived from var.name.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

data "aws_availability_zones" "available" {
  #checkov:skip=CKV_AWS_394:only the first two names are used (sorted, so a new zone does not move them), and availability_zones pins them
  state = "available"

  filter {
    name   = "opt-in-status"
    values = ["opt-in-not-required"]
  }
}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  dns_suffix = data.aws_partition.current.dns_suffix
  azs        = length(var.availability_zones) > 0 ? var.availability_zones : slice(data.aws_availability_zones.available.names, 0, 2)

  uses_tls     = var.jupyter_hub_auth_mechanism != "dummy"
  uses_cognito = var.jupyter_hub_auth_mechanism == "cognito"

  managed_policy = "arn:${local.partition}:iam::aws:policy"
}
