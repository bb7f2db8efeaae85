"""mlship's policy pack: `pulumi preview --policy-pack pulumi/policy` (policies: mlship/k8s/policies.py)."""

from pulumi_policy import EnforcementLevel, PolicyPack

from mlship.k8s.policies import POLICIES

PolicyPack(name="mlship-kubernetes", enforcement_level=EnforcementLevel.MANDATORY, policies=POLICIES)
