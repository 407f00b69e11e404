"""boto3 helpers, one module per concern: session (clients for a target, their retries), consistency
(reading back what was just created), acm, eks, cognito, identity, quotas, leftovers (what a
deployment still has in AWS) and tags (the tag keys they share)."""
