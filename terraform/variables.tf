# ---------------------------------------------------------------------------------------
# Deployment identity
# ---------------------------------------------------------------------------------------

variable "name" {
  description = "Deployment name: the EKS cluster name and the prefix of every resource name."
  type        = string
  default     = "jupyterhub-on-eks"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}[a-z0-9]$", var.name))
    error_message = "Variable 'name' must be 3-32 characters: lowercase letters, digits and '-', starting with a letter and not ending with '-'."
  }
  validation {
    condition     = var.jupyter_hub_auth_mechanism != "cognito" || !can(regex("aws|amazon|cognito", var.name))
    error_message = "Variable 'name' must not contain 'aws', 'amazon' or 'cognito' when jupyter_hub_auth_mechanism is cognito: it prefixes the Cognito hosted-UI domain, which forbids those words."
  }
}

variable "region" {
  description = "AWS region to deploy into, e.g. us-west-2."
  type        = string
  default     = "us-west-2"

  validation {
    condition     = can(regex("^(us|eu|ap|sa|ca|me|af|il|mx)-(north|south|east|west|central|northeast|southeast|southwest|northwest)-[1-9]$", var.region))
    error_message = "Variable 'region' must be an AWS commercial region name such as us-west-2."
  }
}

variable "tags" {
  description = "Extra tags for every resource (merged into the provider's default_tags)."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k in keys(var.tags) : !startswith(k, "runbook:") && !startswith(lower(k), "aws:")])
    error_message = "Variable 'tags' must not use keys starting with 'runbook:' (reserved for the runbook) or 'aws:' (reserved by AWS)."
  }
}

# ---------------------------------------------------------------------------------------
# Login and domain (deployment types 1-3)
# ---------------------------------------------------------------------------------------

variable "jupyter_hub_auth_mechanism" {
  description = "How users log in: dummy (type 1, port-forward, no domain), cognito (type 2, Cognito user pool), oauth (type 3, an external OIDC provider such as Keycloak)."
  type        = string
  default     = "dummy"

  validation {
    condition     = contains(["dummy", "cognito", "oauth"], var.jupyter_hub_auth_mechanism)
    error_message = "Variable 'jupyter_hub_auth_mechanism' must be one of: dummy, cognito, oauth."
  }
}

variable "jupyterhub_domain" {
  description = "Public DNS name of the hub (e.g. hub.example.com). Required for cognito and oauth; must be empty for dummy."
  type        = string
  default     = ""

  validation {
    condition     = var.jupyterhub_domain == "" || can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$", var.jupyterhub_domain))
    error_message = "Variable 'jupyterhub_domain' must be a lowercase fully qualified DNS name such as hub.example.com (no wildcard, no trailing dot)."
  }
  validation {
    condition     = var.jupyter_hub_auth_mechanism == "dummy" ? var.jupyterhub_domain == "" : var.jupyterhub_domain != ""
    error_message = "Variable 'jupyterhub_domain' is required when jupyter_hub_auth_mechanism is cognito or oauth, and must be empty for dummy (type 1 uses port-forward)."
  }
}

variable "acm_certificate_domain" {
  description = "Domain of an ISSUED ACM certificate to look up (e.g. *.example.com). Used for cognito/oauth when certificate_arn is empty."
  type        = string
  default     = ""

  validation {
    condition     = var.acm_certificate_domain == "" || can(regex("^(\\*\\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$", var.acm_certificate_domain))
    error_message = "Variable 'acm_certificate_domain' must be a DNS name, optionally a wildcard such as *.example.com."
  }
  validation {
    condition     = var.jupyter_hub_auth_mechanism == "dummy" || var.acm_certificate_domain != "" || var.certificate_arn != ""
    error_message = "Variable 'acm_certificate_domain' (or certificate_arn) is required when jupyter_hub_auth_mechanism is cognito or oauth: the hub's load balancer terminates TLS with that certificate."
  }
}

variable "certificate_arn" {
  description = "ARN of the ACM certificate for the hub's TLS listener (from notebook 01). When empty, the certificate is looked up by acm_certificate_domain."
  type        = string
  default     = ""

  validation {
    condition     = var.certificate_arn == "" || can(regex("^arn:aws[a-z-]*:acm:[a-z0-9-]+:[0-9]{12}:certificate/[0-9a-f-]{36}$", var.certificate_arn))
    error_message = "Variable 'certificate_arn' must be an ACM certificate ARN (arn:aws:acm:<region>:<account>:certificate/<id>) or empty."
  }
  validation {
    condition     = var.certificate_arn == "" || var.jupyter_hub_auth_mechanism != "dummy"
    error_message = "Variable 'certificate_arn' must be empty when jupyter_hub_auth_mechanism is dummy (type 1 has no TLS listener)."
  }
}

# ---------------------------------------------------------------------------------------
# Network
# ---------------------------------------------------------------------------------------

variable "vpc_cidr" {
  description = "Primary IPv4 CIDR block of the VPC."
  type        = string
  default     = "10.1.0.0/21"

  validation {
    condition     = can(cidrnetmask(var.vpc_cidr)) && cidrhost(var.vpc_cidr, 0) == split("/", var.vpc_cidr)[0]
    error_message = "Variable 'vpc_cidr' must be an IPv4 network in CIDR notation, e.g. 10.1.0.0/21."
  }
}

variable "secondary_cidr" {
  description = "Secondary IPv4 CIDR block for pod subnets (carrier-grade NAT range by default). Empty: no secondary block, no pod subnets."
  type        = string
  default     = "100.64.0.0/16"

  validation {
    condition     = var.secondary_cidr == "" || (can(cidrnetmask(var.secondary_cidr)) && try(cidrhost(var.secondary_cidr, 0) == split("/", var.secondary_cidr)[0], false))
    error_message = "Variable 'secondary_cidr' must be empty or an IPv4 network in CIDR notation, e.g. 100.64.0.0/16."
  }
}

variable "public_subnet_cidrs" {
  description = "CIDR blocks of the two public subnets (one per availability zone), inside vpc_cidr."
  type        = list(string)
  default     = ["10.1.2.0/26", "10.1.2.64/26"]

  validation {
    condition     = length(var.public_subnet_cidrs) == 2 && alltrue([for c in var.public_subnet_cidrs : can(cidrnetmask(c))])
    error_message = "Variable 'public_subnet_cidrs' must hold exactly two IPv4 CIDR blocks, one per availability zone."
  }
}

variable "private_subnet_cidrs" {
  description = "CIDR blocks of the two private subnets (nodes, EFS mount targets), inside vpc_cidr."
  type        = list(string)
  default     = ["10.1.0.0/24", "10.1.1.0/24"]

  validation {
    condition     = length(var.private_subnet_cidrs) == 2 && alltrue([for c in var.private_subnet_cidrs : can(cidrnetmask(c))])
    error_message = "Variable 'private_subnet_cidrs' must hold exactly two IPv4 CIDR blocks, one per availability zone."
  }
}

variable "pod_subnet_cidrs" {
  description = "CIDR blocks of the two private pod subnets inside secondary_cidr. Must be empty when secondary_cidr is empty."
  type        = list(string)
  default     = ["100.64.0.0/17", "100.64.128.0/17"]

  validation {
    condition     = length(var.pod_subnet_cidrs) == 0 || (length(var.pod_subnet_cidrs) == 2 && alltrue([for c in var.pod_subnet_cidrs : can(cidrnetmask(c))]))
    error_message = "Variable 'pod_subnet_cidrs' must be empty or hold exactly two IPv4 CIDR blocks."
  }
  validation {
    condition     = (var.secondary_cidr == "") == (length(var.pod_subnet_cidrs) == 0)
    error_message = "Variable 'pod_subnet_cidrs' must be set exactly when secondary_cidr is set."
  }
}

variable "availability_zones" {
  description = "Two availability zones to use. Empty: the first two available zones of the region."
  type        = list(string)
  default     = []

  validation {
    condition     = length(var.availability_zones) == 0 || (length(var.availability_zones) == 2 && alltrue([for z in var.availability_zones : can(regex("^[a-z]{2}-[a-z]+-[0-9][a-z]$", z))]))
    error_message = "Variable 'availability_zones' must be empty or name exactly two zones such as us-west-2a."
  }
}

variable "nat_gateway_mode" {
  description = "single: one NAT gateway for both zones (cheaper); per-az: one per zone (survives a zone outage)."
  type        = string
  default     = "single"

  validation {
    condition     = contains(["single", "per-az"], var.nat_gateway_mode)
    error_message = "Variable 'nat_gateway_mode' must be single or per-az."
  }
}

# ---------------------------------------------------------------------------------------
# EKS
# ---------------------------------------------------------------------------------------

variable "kubernetes_version" {
  description = "EKS Kubernetes version."
  type        = string
  default     = "1.33"

  validation {
    condition     = contains(["1.31", "1.32", "1.33"], var.kubernetes_version)
    error_message = "Variable 'kubernetes_version' must be one of 1.31, 1.32, 1.33 (a quoted string)."
  }
}

variable "public_access_cidrs" {
  description = "IPv4 CIDR blocks allowed to reach the public EKS API endpoint."
  type        = list(string)
  default     = ["0.0.0.0/0"]

  validation {
    condition     = length(var.public_access_cidrs) > 0 && alltrue([for c in var.public_access_cidrs : can(cidrnetmask(c)) && try(cidrhost(c, 0) == split("/", c)[0], false)])
    error_message = "Variable 'public_access_cidrs' must hold at least one IPv4 network in CIDR notation, e.g. 203.0.113.0/24."
  }
}

variable "cluster_log_types" {
  description = "EKS control-plane log types sent to CloudWatch Logs."
  type        = list(string)
  default     = ["api", "audit", "authenticator", "controllerManager", "scheduler"]

  validation {
    condition     = alltrue([for t in var.cluster_log_types : contains(["api", "audit", "authenticator", "controllerManager", "scheduler"], t)])
    error_message = "Variable 'cluster_log_types' may only contain api, audit, authenticator, controllerManager, scheduler."
  }
}

variable "log_retention_days" {
  description = "Retention of the control-plane log group, in days."
  type        = number
  default     = 7

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365], var.log_retention_days)
    error_message = "Variable 'log_retention_days' must be a CloudWatch retention period: 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180 or 365."
  }
}

variable "cluster_admin_principal_arns" {
  description = "Extra IAM principals (roles/users) given cluster-admin access entries. The identity running Terraform gets admin automatically: do not list it."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for a in var.cluster_admin_principal_arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:(role|user)/.+$", a))])
    error_message = "Variable 'cluster_admin_principal_arns' must hold IAM role or user ARNs (arn:aws:iam::<account>:role/<name>)."
  }
}

variable "core_node_instance_types" {
  description = "Instance types of the core managed node group."
  type        = list(string)
  default     = ["m5.xlarge"]

  validation {
    condition     = length(var.core_node_instance_types) > 0 && alltrue([for t in var.core_node_instance_types : can(regex("^[a-z][a-z0-9-]*\\.[a-z0-9]+$", t))])
    error_message = "Variable 'core_node_instance_types' must hold instance type names such as m5.xlarge."
  }
}

variable "core_node_min_size" {
  description = "Minimum number of core nodes."
  type        = number
  default     = 2

  validation {
    condition     = var.core_node_min_size >= 1 && floor(var.core_node_min_size) == var.core_node_min_size
    error_message = "Variable 'core_node_min_size' must be a whole number of at least 1."
  }
}

variable "core_node_max_size" {
  description = "Maximum number of core nodes."
  type        = number
  default     = 8

  validation {
    condition     = var.core_node_max_size >= var.core_node_min_size && var.core_node_max_size <= 100
    error_message = "Variable 'core_node_max_size' must be at least core_node_min_size and at most 100."
  }
}

variable "core_node_desired_size" {
  description = "Desired number of core nodes at creation."
  type        = number
  default     = 2

  validation {
    condition     = var.core_node_desired_size >= var.core_node_min_size && var.core_node_desired_size <= var.core_node_max_size
    error_message = "Variable 'core_node_desired_size' must lie between core_node_min_size and core_node_max_size."
  }
}

variable "core_node_disk_size" {
  description = "Root volume of each core node, GiB (gp3, encrypted)."
  type        = number
  default     = 100

  validation {
    condition     = var.core_node_disk_size >= 20 && var.core_node_disk_size <= 16384
    error_message = "Variable 'core_node_disk_size' must be between 20 and 16384 GiB."
  }
}

variable "addon_versions" {
  description = "Pinned versions of EKS managed add-ons by name (e.g. { coredns = \"v1.11.4-eksbuild.14\" }). Unlisted add-ons get EKS's default version."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k in keys(var.addon_versions) : contains(["vpc-cni", "coredns", "kube-proxy", "eks-pod-identity-agent", "aws-ebs-csi-driver", "aws-efs-csi-driver"], k)])
    error_message = "Variable 'addon_versions' keys must be managed add-ons of this module: vpc-cni, coredns, kube-proxy, eks-pod-identity-agent, aws-ebs-csi-driver, aws-efs-csi-driver."
  }
}

# ---------------------------------------------------------------------------------------
# Workloads that get AWS permissions through EKS Pod Identity
# ---------------------------------------------------------------------------------------

variable "karpenter_namespace" {
  description = "Namespace the Karpenter controller runs in (its pod-identity association is made for it)."
  type        = string
  default     = "kube-system"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.karpenter_namespace))
    error_message = "Variable 'karpenter_namespace' must be a Kubernetes namespace name."
  }
}

variable "jupyterhub_namespace" {
  description = "Namespace of the JupyterHub release; the single-user service account lives there."
  type        = string
  default     = "jupyterhub"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.jupyterhub_namespace))
    error_message = "Variable 'jupyterhub_namespace' must be a Kubernetes namespace name."
  }
}

variable "singleuser_service_account" {
  description = "Service account of the single-user notebook pods. The platform creates exactly this name (output singleuser_service_account)."
  type        = string
  default     = "jupyterhub-singleuser"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$", var.singleuser_service_account))
    error_message = "Variable 'singleuser_service_account' must be a Kubernetes service account name."
  }
}

variable "singleuser_policy_arns" {
  description = "IAM policy ARNs attached to the single-user notebook role (e.g. read access to a data bucket). None by default."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for a in var.singleuser_policy_arns : can(regex("^arn:aws[a-z-]*:iam::([0-9]{12}|aws):policy/.+$", a))])
    error_message = "Variable 'singleuser_policy_arns' must hold IAM policy ARNs."
  }
}

variable "vpc_flow_logs" {
  description = "VPC flow logs into a KMS-encrypted CloudWatch log group (retention log_retention_days): off, or the traffic to record: REJECT, ACCEPT or ALL."
  type        = string
  default     = "off"

  validation {
    condition     = contains(["off", "REJECT", "ACCEPT", "ALL"], var.vpc_flow_logs)
    error_message = "Variable 'vpc_flow_logs' must be off, REJECT, ACCEPT or ALL (the traffic the flow logs record)."
  }
}
