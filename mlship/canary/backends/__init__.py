"""Traffic backends: `local` (HAProxy runtime API) and Kubernetes (Pulumi stack config + Automation API)."""
