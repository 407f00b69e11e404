# EFS for user storage: one encrypted file system, a mount target per private subnet,
# an NFS security group, and two access points. Home (/home) holds one folder per user
# (mounted with subPath = user name); shared (/shared) is a separate tree, so mounting it
# never exposes anyone's home.

resource "aws_security_group" "efs" {
  name        = "${var.name}-efs"
  description = "NFS from inside the VPC to the ${var.name} EFS mount targets"
  vpc_id      = aws_vpc.this.id

  tags = { Name = "${var.name}-efs" }
}

resource "aws_vpc_security_group_ingress_rule" "efs_nfs" {
  for_each = toset(compact([var.vpc_cidr, var.secondary_cidr]))

  security_group_id = aws_security_group.efs.id
  description       = "NFS from ${each.key}"
  ip_protocol       = "tcp"
  from_port         = 2049
  to_port           = 2049
  cidr_ipv4         = each.key
}

resource "aws_efs_file_system" "this" {
  #checkov:skip=CKV_AWS_184:encrypted at rest with the AWS-managed EFS key; a per-deployment CMK would add a key to manage and bill without narrowing who reads a home (that is the access points' and mounts' job)
  creation_token   = "${var.name}-users"
  encrypted        = true
  performance_mode = "generalPurpose"
  throughput_mode  = "elastic"

  lifecycle_policy {
    transition_to_ia = "AFTER_30_DAYS"
  }

  tags = { Name = "${var.name}-users" }
}

resource "aws_efs_mount_target" "this" {
  count = 2

  file_system_id  = aws_efs_file_system.this.id
  subnet_id       = aws_subnet.private[count.index].id
  security_groups = [aws_security_group.efs.id]
}

locals {
  # jovyan in the Jupyter docker stacks: uid 1000, group users (100).
  efs_access_points = {
    home = {
      path        = "/home"
      permissions = "0755"
    }
    shared = {
      path        = "/shared"
      permissions = "2775"
    }
  }
}

resource "aws_efs_access_point" "this" {
  for_each = local.efs_access_points

  file_system_id = aws_efs_file_system.this.id

  posix_user {
    uid = 1000
    gid = 100
  }

  root_directory {
    path = each.value.path
    creation_info {
      owner_uid   = 1000
      owner_gid   = 100
      permissions = each.value.permissions
    }
  }

  tags = { Name = "${var.name}-${each.key}" }
}
