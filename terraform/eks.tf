# The EKS cluster: API authentication with access entries, secrets encrypted with a KMS
# key, control-plane logs, a public endpoint limited to var.public_access_cidrs, the core
# managed node group, managed add-ons and pod-identity associations.

locals {
  # Add-ons that schedule pods wait for the core nodes.
  addons = ["vpc-cni", "kube-proxy", "eks-pod-identity-agent", "coredns", "aws-ebs-csi-driver", "aws-efs-csi-driver"]

  pod_identities = {
    ebs-csi = {
      namespace       = "kube-system"
      service_account = "ebs-csi-controller-sa"
      role_arn        = aws_iam_role.ebs_csi.arn
    }
    efs-csi = {
      namespace       = "kube-system"
      service_account = "efs-csi-controller-sa"
      role_arn        = aws_iam_role.efs_csi.arn
    }
    karpenter = {
      namespace       = var.karpenter_namespace
      service_account = "karpenter"
      role_arn        = aws_iam_role.karpenter_controller.arn
    }
    aws-load-balancer-controller = {
      namespace       = "kube-system"
      service_account = "aws-load-balancer-controller"
      role_arn        = aws_iam_role.lbc.arn
    }
    singleuser = {
      namespace       = var.jupyterhub_namespace
      service_account = var.singleuser_service_account
      role_arn        = aws_iam_role.singleuser.arn
    }
  }
}

resource "aws_kms_key" "eks" {
  description             = "Secrets encryption of EKS cluster ${var.name}"
  enable_key_rotation     = true
  deletion_window_in_days = 7
  policy                  = data.aws_iam_policy_document.kms_account.json
}

resource "aws_kms_alias" "eks" {
  name          = "alias/${var.name}-eks-secrets"
  target_key_id = aws_kms_key.eks.key_id
}

# Created here (not by EKS) so it has a retention and is destroyed with the cluster.
resource "aws_cloudwatch_log_group" "cluster" {
  #checkov:skip=CKV_AWS_338:retention is the log_retention_days variable (default 7 days, up to 365): a year of control-plane logs is the operator's choice, not the demo's default bill
  name              = "/aws/eks/${var.name}/cluster"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.logs.arn
}

resource "aws_eks_cluster" "this" {
  #checkov:skip=CKV_AWS_39:the public endpoint is the walkthrough's default (kubectl and Terraform run from a laptop); public_access_cidrs narrows it and the private endpoint is on too
  #checkov:skip=CKV_AWS_38:0.0.0.0/0 is only the default of public_access_cidrs (the notebook parameter of the same name narrows it); every request still needs an IAM identity with an access entry
  name     = var.name
  version  = var.kubernetes_version
  role_arn = aws_iam_role.cluster.arn

  enabled_cluster_log_types = var.cluster_log_types

  access_config {
    authentication_mode                         = "API"
    bootstrap_cluster_creator_admin_permissions = true
  }

  encryption_config {
    resources = ["secrets"]
    provider {
      key_arn = aws_kms_key.eks.arn
    }
  }

  vpc_config {
    subnet_ids              = aws_subnet.private[*].id
    endpoint_private_access = true
    endpoint_public_access  = true
    public_access_cidrs     = var.public_access_cidrs
  }

  depends_on = [
    aws_iam_role_policy_attachment.cluster,
    aws_iam_role_policy.cluster_kms,
    aws_cloudwatch_log_group.cluster,
  ]

  lifecycle {
    # Read back from AWS, bootstrap_self_managed_addons is always false (DescribeCluster does not
    # return it), so a cluster the resume adopts after a killed apply would be planned for
    # replacement (hashicorp/terraform-provider-aws#39058). It only matters at creation.
    ignore_changes = [bootstrap_self_managed_addons]
  }
}

resource "aws_eks_access_entry" "admin" {
  for_each = toset(var.cluster_admin_principal_arns)

  cluster_name  = aws_eks_cluster.this.name
  principal_arn = each.key
  type          = "STANDARD"
}

resource "aws_eks_access_policy_association" "admin" {
  for_each = aws_eks_access_entry.admin

  cluster_name  = aws_eks_cluster.this.name
  principal_arn = each.value.principal_arn
  policy_arn    = "arn:${local.partition}:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"

  access_scope {
    type = "cluster"
  }
}

# ---- core managed node group ---------------------------------------------------------------

resource "aws_launch_template" "core" {
  name_prefix            = "${var.name}-core-"
  description            = "Core nodes of ${var.name}: encrypted gp3 root volume, IMDSv2, hop limit 1"
  update_default_version = true

  block_device_mappings {
    device_name = "/dev/xvda"
    ebs {
      volume_size           = var.core_node_disk_size
      volume_type           = "gp3"
      encrypted             = true
      delete_on_termination = true
    }
  }

  # Hop limit 1: pods (one network hop further) get no IMDS token, so no node credentials.
  # Nothing on the core nodes needs IMDS from a pod: the controllers get AWS credentials
  # through EKS Pod Identity and their region / VPC from their values.
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  tag_specifications {
    resource_type = "instance"
    tags          = { Name = "${var.name}-core", "runbook:deployment" = var.name }
  }
}

resource "aws_eks_node_group" "core" {
  cluster_name    = aws_eks_cluster.this.name
  node_group_name = "core"
  node_role_arn   = aws_iam_role.core_node.arn
  subnet_ids      = aws_subnet.private[*].id
  instance_types  = var.core_node_instance_types
  ami_type        = "AL2023_x86_64_STANDARD"
  capacity_type   = "ON_DEMAND"

  scaling_config {
    min_size     = var.core_node_min_size
    max_size     = var.core_node_max_size
    desired_size = var.core_node_desired_size
  }

  update_config {
    max_unavailable = 1
  }

  launch_template {
    id      = aws_launch_template.core.id
    version = aws_launch_template.core.latest_version
  }

  labels = {
    NodeGroupType = "core"
  }

  lifecycle {
    # The cluster autoscaler / operators may change the size; do not fight them.
    ignore_changes = [scaling_config[0].desired_size]
  }

  depends_on = [aws_iam_role_policy_attachment.core_node]
}

# ---- managed add-ons and pod identities ---------------------------------------------------

resource "aws_eks_pod_identity_association" "this" {
  for_each = local.pod_identities

  cluster_name    = aws_eks_cluster.this.name
  namespace       = each.value.namespace
  service_account = each.value.service_account
  role_arn        = each.value.role_arn
}

resource "aws_eks_addon" "this" {
  for_each = toset(local.addons)

  cluster_name                = aws_eks_cluster.this.name
  addon_name                  = each.key
  addon_version               = lookup(var.addon_versions, each.key, null)
  resolve_conflicts_on_create = "OVERWRITE"
  resolve_conflicts_on_update = "OVERWRITE"
  # The VPC CNI's network policy agent enforces the hub's NetworkPolicies (z2jh's hub, proxy and
  # user-server policies: a user server reaches neither another user's server nor the metadata
  # service); without it EKS stores them and enforces nothing.
  configuration_values = each.key == "vpc-cni" ? jsonencode({ enableNetworkPolicy = "true" }) : null

  # Nodes first (coredns and the CSI controllers need somewhere to run), and the
  # pod identities first so the CSI controllers start with their credentials.
  depends_on = [aws_eks_node_group.core, aws_eks_pod_identity_association.this]
}
