"""boto3 helpers, one module per concern: session, acm, eks, cognito, quotas, leftovers."""
