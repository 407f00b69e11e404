# Everything later steps (platform install, verification, cleanup) need.

output "cluster_name" {
  description = "Name of the EKS cluster."
  value       = aws_eks_cluster.this.name
}

output "cluster_endpoint" {
  description = "URL of the cluster's Kubernetes API server."
  value       = aws_eks_cluster.this.endpoint
}

output "cluster_certificate_authority_data" {
  description = "Base64 PEM of the cluster's certificate authority."
  value       = aws_eks_cluster.this.certificate_authority[0].data
}

output "cluster_security_group_id" {
  description = "Security group EKS created for the cluster (empty until EKS reports it)."
  value       = aws_eks_cluster.this.vpc_config[0].cluster_security_group_id
}

output "region" {
  description = "AWS region of the deployment."
  value       = var.region
}

output "configure_kubectl" {
  description = "Command that writes a kubeconfig entry for the cluster."
  value       = "aws eks --region ${var.region} update-kubeconfig --name ${aws_eks_cluster.this.name}"
}

output "vpc_id" {
  description = "ID of the VPC."
  value       = aws_vpc.this.id
}

output "public_subnet_ids" {
  description = "IDs of the public subnets (load balancers)."
  value       = aws_subnet.public[*].id
}

output "private_subnet_ids" {
  description = "IDs of the private subnets (nodes, EFS mount targets)."
  value       = aws_subnet.private[*].id
}

output "pod_subnet_ids" {
  description = "IDs of the pod subnets in the secondary CIDR (empty when disabled)."
  value       = aws_subnet.pods[*].id
}

output "efs_file_system_id" {
  description = "ID of the EFS file system for user storage."
  value       = aws_efs_file_system.this.id
}

output "efs_home_access_point_id" {
  description = "EFS access point rooted at /home (one sub-folder per user)."
  value       = aws_efs_access_point.this["home"].id
}

output "efs_shared_access_point_id" {
  description = "EFS access point rooted at /shared (does not expose /home)."
  value       = aws_efs_access_point.this["shared"].id
}

output "karpenter_node_role_name" {
  description = "IAM role for nodes Karpenter launches (EC2NodeClass spec.role)."
  value       = aws_iam_role.karpenter_node.name
}

output "karpenter_queue_name" {
  description = "SQS interruption queue for Karpenter (settings.interruptionQueue)."
  value       = aws_sqs_queue.karpenter.name
}

output "karpenter_discovery_tag" {
  description = "Value of the karpenter.sh/discovery tag on the node subnets."
  value       = var.name
}

output "lbc_role_arn" {
  description = "IAM role of the AWS Load Balancer Controller (pod identity in kube-system/aws-load-balancer-controller)."
  value       = aws_iam_role.lbc.arn
}

output "singleuser_role_arn" {
  description = "IAM role of the single-user notebook pods (pod identity)."
  value       = aws_iam_role.singleuser.arn
}

output "singleuser_namespace" {
  description = "Namespace the single-user pods run in; the platform installs JupyterHub there."
  value       = var.jupyterhub_namespace
}

output "singleuser_service_account" {
  description = "Service account the platform must create for single-user pods (the pod identity trusts exactly this name)."
  value       = var.singleuser_service_account
}

output "certificate_arn" {
  description = "ACM certificate for the hub's TLS listener (empty for dummy login)."
  value       = local.certificate_arn
}

output "jupyterhub_domain" {
  description = "Public DNS name of the hub (empty for dummy login)."
  value       = var.jupyterhub_domain
}

output "jupyter_hub_auth_mechanism" {
  description = "Login method the deployment was built for."
  value       = var.jupyter_hub_auth_mechanism
}

output "cognito_user_pool_id" {
  description = "Cognito user pool ID (empty unless auth is cognito)."
  value       = local.uses_cognito ? aws_cognito_user_pool.this[0].id : ""
}

output "cognito_client_id" {
  description = "Cognito app client ID of the hub (empty unless auth is cognito)."
  value       = local.uses_cognito ? aws_cognito_user_pool_client.hub[0].id : ""
}

output "cognito_client_secret" {
  description = "Cognito app client secret of the hub (empty unless auth is cognito)."
  value       = local.uses_cognito ? aws_cognito_user_pool_client.hub[0].client_secret : ""
  sensitive   = true
}

output "cognito_domain" {
  description = "Cognito hosted-UI domain prefix (empty unless auth is cognito)."
  value       = local.uses_cognito ? aws_cognito_user_pool_domain.this[0].domain : ""
}

output "cognito_authorize_url" {
  description = "OAuth2 authorize endpoint of the Cognito hosted UI (empty unless auth is cognito)."
  value       = local.uses_cognito ? "${local.cognito_base_url}/oauth2/authorize" : ""
}

output "cognito_token_url" {
  description = "OAuth2 token endpoint of the Cognito hosted UI (empty unless auth is cognito)."
  value       = local.uses_cognito ? "${local.cognito_base_url}/oauth2/token" : ""
}

output "cognito_userinfo_url" {
  description = "OAuth2 userinfo endpoint of the Cognito hosted UI (empty unless auth is cognito)."
  value       = local.uses_cognito ? "${local.cognito_base_url}/oauth2/userInfo" : ""
}

output "hub_callback_url" {
  description = "OAuth callback URL registered for the hub (empty for dummy login)."
  value       = local.uses_tls ? local.hub_callback_url : ""
}
