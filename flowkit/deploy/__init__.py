"""Deployment: Lambda artifacts (``package``) and the CloudFormation template (``template``)."""
