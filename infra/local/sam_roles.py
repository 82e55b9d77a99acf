#!/usr/bin/env python3
"""Every function's whole execution role, as AWS would enforce it.

Transforms the SAM template offline with the SAM translator (the `samtranslator` package that
aws-sam-cli installs; no AWS call: the managed-policy map is the one bundled with the translator)
and prints, as JSON, per function logical id, the role the transformed template gives it:

    {
      "OrderIntakeFunction": {
        "binary": "order-intake",                 # Metadata.BuildProperties.Binary
        "function_name": {"Fn::Sub": "..."},      # its FunctionName, null if it has none
        "event_sources": [                        # its event source mappings: what Lambda
          {"type": "AWS::SQS::Queue",             # polls for it with this role
           "arn": {"Fn::GetAtt": ["Queue", "Arn"]}}
        ],
        "role": "OrderIntakeFunctionExecutionRole",  # the role's logical id
        "generated_by_sam": false,                # true: SAM made it (<LogicalId>Role)
        "assume_role_policy": {...},
        "managed_policy_arns": [...],             # the role's, and those of any
                                                  # AWS::IAM::ManagedPolicy attached to it
        "permissions_boundary": null,
        "statements": [                           # every inline statement: the role's own
          {"policy": "...", "Effect": "Allow",    # policies and any AWS::IAM::Policy or
           "Action": [...], "Resource": [...]}    # AWS::IAM::RolePolicy attached to it
        ]
      }
    }

`Action` and `Resource` are always lists; resources are as the template writes them, intrinsic
functions left as they are (`{"Fn::GetAtt": [...]}`, `{"Fn::Sub": "..."}`, `{"Ref": ...}`).

Usage: sam_roles.py [TEMPLATE] [--transformed]   (TEMPLATE: infra/template.yaml by default;
--transformed prints the whole transformed template instead.) Run it with the Python that has
aws-sam-cli (`.tools/venv/bin/python`).
"""

import json
import os
import sys
from pathlib import Path

# Offline: a fixed region (the partition, aws, comes from it; the template's own ${AWS::Region}
# stays an intrinsic) and no local AWS configuration or credentials read.
os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
os.environ["AWS_CONFIG_FILE"] = os.devnull
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull

from samtranslator.internal.managed_policies import get_bundled_managed_policy_map  # noqa: E402
from samtranslator.translator.arn_generator import ArnGenerator  # noqa: E402
from samtranslator.translator.transform import transform  # noqa: E402
from samtranslator.yaml_helper import yaml_parse  # noqa: E402

ArnGenerator.BOTO_SESSION_REGION_NAME = "us-east-1"

DEFAULT_TEMPLATE = Path(__file__).resolve().parent.parent / "template.yaml"


class BundledManagedPolicies:
    """A managed-policy loader that asks IAM nothing: the name-to-ARN map the translator ships."""

    def load(self):
        return dict(get_bundled_managed_policy_map("aws") or {})


def listed(value):
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def referenced_role(value, resources):
    """The logical id of the AWS::IAM::Role that `value` (a Role property) names, or None."""
    if isinstance(value, dict) and len(value) == 1:
        (function, argument), = value.items()
        if function == "Fn::GetAtt":
            parts = argument.split(".", 1) if isinstance(argument, str) else argument
            if len(parts) == 2 and parts[1] == "Arn":
                name = parts[0]
                if resources.get(name, {}).get("Type") == "AWS::IAM::Role":
                    return name
    return None


def names_role(value, role):
    """Whether `value` (an entry of a policy's Roles, or a RoleName) is `!Ref role`."""
    return value == {"Ref": role}


def statements_of(policy_name, document):
    out = []
    for statement in listed((document or {}).get("Statement")):
        entry = {"policy": policy_name}
        for key, value in statement.items():
            entry[key] = listed(value) if key in ("Action", "NotAction", "Resource", "NotResource") else value
        out.append(entry)
    return out


def event_sources_of(function_id, resources):
    """The event source mappings of the function: each one's source ARN as written, and the type
    of the resource it names (AWS::SQS::Queue, AWS::DynamoDB::Table), if it is one of the
    template's."""
    out = []
    for mapping in resources.values():
        properties = mapping.get("Properties", {})
        if mapping.get("Type") != "AWS::Lambda::EventSourceMapping" or properties.get("FunctionName") != {
            "Ref": function_id
        }:
            continue
        arn = properties.get("EventSourceArn")
        named = arn.get("Fn::GetAtt", [None])[0] if isinstance(arn, dict) else None
        out.append({"type": resources.get(named, {}).get("Type"), "arn": arn})
    return out


def role_of(role_id, resources):
    role = resources[role_id]
    properties = role.get("Properties", {})
    managed = list(listed(properties.get("ManagedPolicyArns")))
    statements = []
    for policy in listed(properties.get("Policies")):
        statements += statements_of(policy.get("PolicyName"), policy.get("PolicyDocument"))
    # Policies attached to the role from outside it.
    for other_id, other in resources.items():
        kind = other.get("Type")
        other_properties = other.get("Properties", {})
        if kind == "AWS::IAM::Policy" and any(names_role(r, role_id) for r in listed(other_properties.get("Roles"))):
            statements += statements_of(other_id, other_properties.get("PolicyDocument"))
        elif kind == "AWS::IAM::RolePolicy" and names_role(other_properties.get("RoleName"), role_id):
            statements += statements_of(other_id, other_properties.get("PolicyDocument"))
        elif kind == "AWS::IAM::ManagedPolicy" and any(
            names_role(r, role_id) for r in listed(other_properties.get("Roles"))
        ):
            managed.append({"Ref": other_id})
    return {
        "role": role_id,
        "assume_role_policy": properties.get("AssumeRolePolicyDocument"),
        "managed_policy_arns": managed,
        "permissions_boundary": properties.get("PermissionsBoundary"),
        "statements": statements,
    }


def packaged(source):
    """A copy of the template as `sam package` would leave it: a local CodeUri (a folder the
    build turns into a zip) becomes an S3 location, which is what the transform requires; the
    roles do not depend on it. `sam validate` does the same."""
    template = json.loads(json.dumps(source))
    functions = [r for r in template.get("Resources", {}).values() if r.get("Type") == "AWS::Serverless::Function"]
    globals_function = template.get("Globals", {}).get("Function")
    for properties in [f.setdefault("Properties", {}) for f in functions] + ([globals_function] if globals_function else []):
        code = properties.get("CodeUri")
        if isinstance(code, str) and not code.startswith("s3://"):
            properties["CodeUri"] = "s3://packaged/code.zip"
    return template


def main(argv):
    args = [a for a in argv if not a.startswith("--")]
    path = Path(args[0]) if args else DEFAULT_TEMPLATE
    source = yaml_parse(path.read_text(encoding="utf-8"))
    sam_functions = {
        logical_id: resource
        for logical_id, resource in source.get("Resources", {}).items()
        if resource.get("Type") == "AWS::Serverless::Function"
    }
    transformed = transform(packaged(source), {}, BundledManagedPolicies())
    if "--transformed" in argv:
        json.dump(transformed, sys.stdout, indent=2, sort_keys=True)
        print()
        return 0
    resources = transformed["Resources"]
    roles = {}
    for logical_id, sam_function in sam_functions.items():
        function = resources.get(logical_id)
        if function is None or function.get("Type") != "AWS::Lambda::Function":
            raise SystemExit(f"{logical_id}: no AWS::Lambda::Function of that id after the transform")
        role_property = function["Properties"].get("Role")
        role_id = referenced_role(role_property, resources)
        if role_id is None:
            raise SystemExit(
                f"{logical_id}: its Role ({json.dumps(role_property)}) is not !GetAtt <a role of this template>.Arn"
            )
        entry = {
            "binary": sam_function.get("Metadata", {}).get("BuildProperties", {}).get("Binary"),
            "function_name": function["Properties"].get("FunctionName"),
            "event_sources": event_sources_of(logical_id, resources),
            "generated_by_sam": role_id not in source.get("Resources", {}),
        }
        entry.update(role_of(role_id, resources))
        roles[logical_id] = entry
    json.dump(roles, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
