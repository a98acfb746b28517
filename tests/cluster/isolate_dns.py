"""Remove `forward` from the test cluster's Corefile and restart CoreDNS.

The machines running the tests have an off-box resolver that test traffic must
never reach; with no forward plugin, names outside the cluster simply fail.
"""

from __future__ import annotations

import json
import subprocess

from k2s_dns import corefile


def kubectl(*args: str, stdin: str | None = None) -> str:
    return subprocess.run(["kubectl", *args], input=stdin, capture_output=True, text=True, check=True).stdout


def without_forward(text: str) -> str:
    block = corefile.find_server_block(corefile.parse(text), ".:53")
    for directive in block.directives:
        if directive.name == "forward":
            end = text.find("\n", directive.end) + 1 or len(text)
            return text[: directive.line_start] + text[end:]
    return text


def main() -> None:
    cm = json.loads(kubectl("-n", "kube-system", "get", "configmap", "coredns", "-o", "json"))
    current = cm["data"]["Corefile"]
    isolated = without_forward(current)
    if isolated == current:
        print("CoreDNS already forwards nowhere")
        return
    cm["data"]["Corefile"] = isolated
    kubectl("replace", "-f", "-", stdin=json.dumps(cm))
    # Delete the pods rather than `rollout restart`: the Deployment stays exactly as kubeadm made it,
    # so the e2e suite can compare it with what kubeadm's CoreDNS addon phase writes again.
    kubectl("-n", "kube-system", "delete", "pod", "-l", "k8s-app=kube-dns", "--wait=false")
    print("removed forward from the test cluster's Corefile")


if __name__ == "__main__":
    main()
