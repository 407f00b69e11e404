terraform {
  # 1.9+ for validation rules that refer to other variables.
  required_version = ">= 1.9.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.100"
    }
  }
}

# Tags are applied in one place. `runbook:deployment` is what the leftovers scan keys on.
provider "aws" {
  region = var.region

  default_tags {
    tags = merge(var.tags, {
      "runbook:deployment" = var.name
      "runbook:managed-by" = "terraform"
    })
  }
}
