# Cognito (only when jupyter_hub_auth_mechanism = cognito): a user pool with email
# user names, a hosted-UI domain, and the hub's app client (authorization-code flow).
# The domain prefix must be unique per region across all accounts; it is derived from
# the deployment name plus a hash of account/region/name, so no random provider is needed.

locals {
  cognito_domain_prefix = "${var.name}-${substr(sha1("${local.account_id}/${var.region}/${var.name}"), 0, 10)}"
  cognito_base_url      = "https://${local.cognito_domain_prefix}.auth.${var.region}.amazoncognito.com"
  hub_callback_url      = "https://${var.jupyterhub_domain}/hub/oauth_callback"
}

resource "aws_cognito_user_pool" "this" {
  count = local.uses_cognito ? 1 : 0

  name                     = "${var.name}-users"
  username_attributes      = ["email"]
  auto_verified_attributes = ["email"]
  deletion_protection      = "INACTIVE"

  username_configuration {
    case_sensitive = false
  }

  password_policy {
    minimum_length                   = 12
    require_lowercase                = true
    require_uppercase                = true
    require_numbers                  = true
    require_symbols                  = false
    temporary_password_validity_days = 7
  }

  account_recovery_setting {
    recovery_mechanism {
      name     = "verified_email"
      priority = 1
    }
  }
}

resource "aws_cognito_user_pool_domain" "this" {
  count = local.uses_cognito ? 1 : 0

  domain       = local.cognito_domain_prefix
  user_pool_id = aws_cognito_user_pool.this[0].id
}

resource "aws_cognito_user_pool_client" "hub" {
  count = local.uses_cognito ? 1 : 0

  name                                 = "${var.name}-jupyterhub"
  user_pool_id                         = aws_cognito_user_pool.this[0].id
  generate_secret                      = true
  allowed_oauth_flows_user_pool_client = true
  allowed_oauth_flows                  = ["code"]
  allowed_oauth_scopes                 = ["openid", "email", "profile"]
  callback_urls                        = [local.hub_callback_url]
  logout_urls                          = ["https://${var.jupyterhub_domain}/hub/logout"]
  supported_identity_providers         = ["COGNITO"]
  explicit_auth_flows                  = ["ALLOW_REFRESH_TOKEN_AUTH", "ALLOW_USER_SRP_AUTH"]
  prevent_user_existence_errors        = "ENABLED"
}
