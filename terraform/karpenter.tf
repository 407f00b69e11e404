# Karpenter: the node role (+ access entry so its nodes can join), the controller role
# (pod identity), and the interruption queue fed by EventBridge rules.

resource "aws_iam_role" "karpenter_node" {
  name               = "${var.name}-karpenter-node"
  description        = "Nodes launched by Karpenter for ${var.name}"
  assume_role_policy = data.aws_iam_policy_document.ec2_assume.json
}

resource "aws_iam_role_policy_attachment" "karpenter_node" {
  for_each = toset(local.node_policies)

  role       = aws_iam_role.karpenter_node.name
  policy_arn = "${local.managed_policy}/${each.key}"
}

resource "aws_eks_access_entry" "karpenter_node" {
  cluster_name  = aws_eks_cluster.this.name
  principal_arn = aws_iam_role.karpenter_node.arn
  type          = "EC2_LINUX"
}

# ---- interruption queue -----------------------------------------------------------------

locals {
  karpenter_queue_name = "${var.name}-karpenter"
  # Built rather than read from the queue, so the policy can be set at creation (one
  # resource instead of a queue plus a queue policy, each waiting for propagation).
  karpenter_queue_arn = "arn:${local.partition}:sqs:${var.region}:${local.account_id}:${local.karpenter_queue_name}"
}

data "aws_iam_policy_document" "karpenter_queue" {
  statement {
    sid       = "EventBridgeAndSqs"
    actions   = ["sqs:SendMessage"]
    resources = [local.karpenter_queue_arn]
    principals {
      type        = "Service"
      identifiers = ["events.${local.dns_suffix}", "sqs.${local.dns_suffix}"]
    }
  }
  statement {
    sid       = "DenyHTTP"
    effect    = "Deny"
    actions   = ["sqs:*"]
    resources = [local.karpenter_queue_arn]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_sqs_queue" "karpenter" {
  name                      = local.karpenter_queue_name
  message_retention_seconds = 300
  sqs_managed_sse_enabled   = true
  policy                    = data.aws_iam_policy_document.karpenter_queue.json
}

locals {
  karpenter_events = {
    health-event = {
      source      = ["aws.health"]
      detail-type = ["AWS Health Event"]
    }
    spot-interruption = {
      source      = ["aws.ec2"]
      detail-type = ["EC2 Spot Instance Interruption Warning"]
    }
    rebalance = {
      source      = ["aws.ec2"]
      detail-type = ["EC2 Instance Rebalance Recommendation"]
    }
    instance-state-change = {
      source      = ["aws.ec2"]
      detail-type = ["EC2 Instance State-change Notification"]
    }
  }
}

resource "aws_cloudwatch_event_rule" "karpenter" {
  for_each = local.karpenter_events

  name          = "${var.name}-karpenter-${each.key}"
  description   = "Karpenter interruption handling (${each.key}) for ${var.name}"
  event_pattern = jsonencode(each.value)
}

resource "aws_cloudwatch_event_target" "karpenter" {
  for_each = local.karpenter_events

  rule      = aws_cloudwatch_event_rule.karpenter[each.key].name
  target_id = "karpenter-interruption-queue"
  arn       = aws_sqs_queue.karpenter.arn
}

# ---- controller -------------------------------------------------------------------------

data "aws_iam_policy_document" "karpenter_controller" {
  statement {
    sid = "ReadOnly"
    actions = [
      "ec2:DescribeAvailabilityZones", "ec2:DescribeImages", "ec2:DescribeInstances",
      "ec2:DescribeInstanceTypeOfferings", "ec2:DescribeInstanceTypes", "ec2:DescribeLaunchTemplates",
      "ec2:DescribeSecurityGroups", "ec2:DescribeSpotPriceHistory", "ec2:DescribeSubnets",
      "pricing:GetProducts",
    ]
    resources = ["*"]
    condition {
      test     = "StringEquals"
      variable = "aws:RequestedRegion"
      values   = [var.region]
    }
  }
  statement {
    sid     = "LaunchNodes"
    actions = ["ec2:RunInstances", "ec2:CreateFleet", "ec2:CreateLaunchTemplate"]
    resources = [
      "arn:${local.partition}:ec2:${var.region}:*:fleet/*",
      "arn:${local.partition}:ec2:${var.region}:*:instance/*",
      "arn:${local.partition}:ec2:${var.region}:*:volume/*",
      "arn:${local.partition}:ec2:${var.region}:*:network-interface/*",
      "arn:${local.partition}:ec2:${var.region}:*:launch-template/*",
      "arn:${local.partition}:ec2:${var.region}:*:spot-instances-request/*",
      "arn:${local.partition}:ec2:${var.region}:*:security-group/*",
      "arn:${local.partition}:ec2:${var.region}:*:subnet/*",
      "arn:${local.partition}:ec2:${var.region}::image/*",
      "arn:${local.partition}:ec2:${var.region}::snapshot/*",
      "arn:${local.partition}:ec2:${var.region}:*:capacity-reservation/*",
    ]
  }
  statement {
    sid       = "TagOnCreate"
    actions   = ["ec2:CreateTags"]
    resources = ["arn:${local.partition}:ec2:${var.region}:*:*"]
    condition {
      test     = "StringEquals"
      variable = "ec2:CreateAction"
      values   = ["RunInstances", "CreateFleet", "CreateLaunchTemplate"]
    }
  }
  statement {
    sid       = "ManageOwnNodes"
    actions   = ["ec2:TerminateInstances", "ec2:DeleteLaunchTemplate", "ec2:CreateTags"]
    resources = ["arn:${local.partition}:ec2:${var.region}:*:*"]
    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/kubernetes.io/cluster/${var.name}"
      values   = ["owned"]
    }
  }
  statement {
    sid       = "PassNodeRole"
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.karpenter_node.arn]
    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ec2.${local.dns_suffix}"]
    }
  }
  statement {
    sid = "InstanceProfiles"
    actions = [
      "iam:CreateInstanceProfile", "iam:TagInstanceProfile", "iam:AddRoleToInstanceProfile",
      "iam:RemoveRoleFromInstanceProfile", "iam:DeleteInstanceProfile", "iam:GetInstanceProfile",
    ]
    resources = ["arn:${local.partition}:iam::${local.account_id}:instance-profile/*"]
  }
  statement {
    sid       = "Interruptions"
    actions   = ["sqs:DeleteMessage", "sqs:GetQueueUrl", "sqs:ReceiveMessage"]
    resources = [aws_sqs_queue.karpenter.arn]
  }
  statement {
    sid       = "AmiParameters"
    actions   = ["ssm:GetParameter"]
    resources = ["arn:${local.partition}:ssm:${var.region}::parameter/aws/service/*"]
  }
  statement {
    sid       = "Cluster"
    actions   = ["eks:DescribeCluster"]
    resources = [aws_eks_cluster.this.arn]
  }
}

resource "aws_iam_policy" "karpenter_controller" {
  name        = "${var.name}-karpenter-controller"
  description = "Karpenter controller of ${var.name}"
  policy      = data.aws_iam_policy_document.karpenter_controller.json
}

resource "aws_iam_role" "karpenter_controller" {
  name               = "${var.name}-karpenter-controller"
  description        = "Karpenter controller of ${var.name} (pod identity)"
  assume_role_policy = data.aws_iam_policy_document.pod_identity_assume.json
}

resource "aws_iam_role_policy_attachment" "karpenter_controller" {
  role       = aws_iam_role.karpenter_controller.name
  policy_arn = aws_iam_policy.karpenter_controller.arn
}
