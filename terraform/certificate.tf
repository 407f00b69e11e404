# The hub's TLS certificate (types 2 and 3 only). Nothing is created here: the ARN comes
# from notebook 01 (var.certificate_arn) or an ISSUED certificate is looked up by domain.

data "aws_acm_certificate" "hub" {
  # Referencing the domain variables makes the lookup wait for their validation, so a
  # bad input fails at once instead of after the lookup's own retries.
  count = local.uses_tls && var.certificate_arn == "" && var.jupyterhub_domain != "" && var.acm_certificate_domain != "" ? 1 : 0

  domain      = var.acm_certificate_domain
  statuses    = ["ISSUED"]
  most_recent = true
}

locals {
  certificate_arn = local.uses_tls ? (var.certificate_arn != "" ? var.certificate_arn : data.aws_acm_certificate.hub[0].arn) : ""
}
