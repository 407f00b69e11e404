"""Unit tests of the sandbox cluster's building blocks (no server): quantities, selectors,
patches, the store's watch history, validation, device-plugin configs, tokens."""

from __future__ import annotations

import asyncio
import base64
from datetime import datetime, timedelta, timezone
from fractions import Fraction

import pytest

from eks_hub_runbook import instance_types, third_party
from eks_hub_sandbox.kube import patch, quantity, selectors, validation
from eks_hub_sandbox.kube.apply import server_side_apply
from eks_hub_sandbox.kube.auth import eks_token_cluster
from eks_hub_sandbox.kube.cluster import Cluster, WriteOptions
from eks_hub_sandbox.kube.controllers.device_plugins import nvidia_resources, select_config
from eks_hub_sandbox.kube.errors import ApiError
from eks_hub_sandbox.kube.store import Store


@pytest.mark.parametrize("text,value", [("500m", Fraction(1, 2)), ("2", 2), ("1Gi", 2**30), ("1e3", 1000),
                                        ("1.5", Fraction(3, 2)), ("100Mi", 100 * 2**20), (4, 4), (0.25, Fraction(1, 4))])
def test_quantity_parse(text, value):
    assert quantity.parse(text) == value


def test_quantity_canonical_and_invalid():
    assert quantity.canonical(4) == "4" and quantity.canonical(0.5) == "500m" and quantity.canonical("1Gi") == "1Gi"
    assert quantity.format_bytes(Fraction(16 * 2**30)) == "16Gi"
    with pytest.raises(quantity.QuantityError):
        quantity.parse("four")


@pytest.mark.parametrize("selector,labels,expected", [
    ("app=hub", {"app": "hub"}, True), ("app==hub", {"app": "proxy"}, False), ("app!=hub", {}, True),
    ("tier in (a,b),app", {"tier": "b", "app": "x"}, True), ("tier notin (a,b)", {"tier": "a"}, False),
    ("!gpu", {"gpu": "1"}, False), ("!gpu", {}, True), ("gpu", {"gpu": ""}, True),
])
def test_label_selectors(selector, labels, expected):
    requirements = selectors.parse_label_selector(selector)
    assert selectors.labels_match(requirements, {"metadata": {"labels": labels}}) is expected


def test_field_selectors_and_unsupported_field():
    event = {"kind": "Event", "metadata": {"name": "e", "namespace": "ns"},
             "involvedObject": {"kind": "Pod", "name": "p", "namespace": "ns"}}
    terms = selectors.parse_field_selector("involvedObject.kind=Pod,involvedObject.namespace=ns", "Event")
    assert selectors.fields_match(terms, event)
    pod = {"kind": "Pod", "metadata": {"name": "p"}, "spec": {}, "status": {"phase": "Running"}}
    assert selectors.fields_match(selectors.parse_field_selector("spec.nodeName=,status.phase!=Failed", "Pod"), pod)
    with pytest.raises(ApiError) as error:
        selectors.parse_field_selector("spec.bogus=1", "Pod")
    assert error.value.code == 400


def test_strategic_merge_patch_keys_and_directives():
    live = {"spec": {"containers": [{"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}]},
                                    {"name": "b", "image": "b:1"}],
                     "tolerations": [{"key": "t"}]},
            "metadata": {"finalizers": ["f1"]}}
    patched = patch.strategic_merge(live, {
        "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
        "spec": {"containers": [{"name": "a", "image": "a:2", "env": [{"name": "Y", "value": "2"}]},
                                {"name": "b", "$patch": "delete"}],
                 "tolerations": [{"key": "u"}]},
        "metadata": {"finalizers": ["f2"]}})
    assert [c["name"] for c in patched["spec"]["containers"]] == ["a"]
    assert patched["spec"]["containers"][0]["image"] == "a:2"
    assert [e["name"] for e in patched["spec"]["containers"][0]["env"]] == ["X", "Y"]
    assert patched["spec"]["tolerations"] == [{"key": "u"}]  # no merge key: replaced
    assert patched["metadata"]["finalizers"] == ["f1", "f2"]  # primitive set merge


def test_json_and_merge_patch():
    doc = {"a": {"b": [1, 2]}, "c": 1}
    assert patch.json_patch(doc, [{"op": "add", "path": "/a/b/-", "value": 3}, {"op": "remove", "path": "/c"}]) == \
        {"a": {"b": [1, 2, 3]}}
    assert patch.merge_patch(doc, {"a": None, "d": {"e": 1}}) == {"c": 1, "d": {"e": 1}}
    with pytest.raises(ApiError):
        patch.json_patch(doc, [{"op": "test", "path": "/c", "value": 2}])


def test_server_side_apply_removes_fields_the_manager_dropped():
    first = server_side_apply(None, {"metadata": {"name": "x", "labels": {"a": "1", "b": "2"}}, "data": {"k": "v"}},
                              "kubectl", "v1")
    second = server_side_apply(first, {"metadata": {"name": "x", "labels": {"a": "1"}}, "data": {"k": "w"}},
                               "kubectl", "v1")
    assert second["metadata"]["labels"] == {"a": "1"} and second["data"] == {"k": "w"}
    assert [m["manager"] for m in second["metadata"]["managedFields"]] == ["kubectl"]


def test_store_watch_replays_history_and_answers_gone_when_compacted(monkeypatch):
    async def scenario():
        from eks_hub_sandbox.kube import store as store_module
        monkeypatch.setattr(store_module, "HISTORY_PER_COLLECTION", 5)
        store = Store()
        key = ("", "configmaps")
        first = store.put(key, {"metadata": {"name": "a", "namespace": "n"}})
        for index in range(8):
            store.put(key, {"metadata": {"name": f"c{index}", "namespace": "n"}})
        with pytest.raises(ApiError) as error:
            store.watch(key, None, None, first.revision)
        assert error.value.code == 410
        recent = store.collection(key).history[-2].revision
        watcher, backlog = store.watch(key, "n", None, recent)
        assert [c.obj["metadata"]["name"] for _, c in backlog] == ["c7"]
        store.remove(key, "n", "c7")
        type_, change = await watcher.queue.get()
        assert type_ == "DELETED" and int(change.obj["metadata"]["resourceVersion"]) > recent
    asyncio.run(scenario())


def test_watch_filter_turns_label_changes_into_added_and_deleted():
    async def scenario():
        store = Store()
        key = ("", "pods")
        watcher, _ = store.watch(key, None, selectors.selector_predicate("app=x", None, "Pod"), store.revision)
        store.put(key, {"metadata": {"name": "p", "namespace": "n", "labels": {"app": "y"}}})
        store.put(key, {"metadata": {"name": "p", "namespace": "n", "labels": {"app": "x"}}})
        store.put(key, {"metadata": {"name": "p", "namespace": "n", "labels": {"app": "z"}}})
        return [watcher.queue.get_nowait()[0] for _ in range(2)]
    assert asyncio.run(scenario()) == ["ADDED", "DELETED"]


def test_builtin_validation_reports_unknown_fields_and_types():
    unknown, causes = validation.validate_builtin({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                                                   "spec": {"containers": [{"name": "c", "image": "i", "bogus": 1}],
                                                            "restartPolicy": 3}})
    assert unknown == ["spec.containers[0].bogus"]
    assert any(c["field"] == "spec.restartPolicy" for c in causes)


def test_cluster_rejects_what_a_real_server_rejects():
    cluster = Cluster()
    from eks_hub_sandbox.kube import bootstrap
    bootstrap.install(cluster)
    pods = cluster.resource("", "pods")
    bad = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "gpu"},
           "spec": {"containers": [{"name": "c", "image": "i", "resources": {"requests": {"nvidia.com/gpu": 1}}}]}}
    with pytest.raises(ApiError) as error:
        cluster.create(pods, "default", bad)
    assert error.value.code == 422 and error.value.reason == "Invalid"
    assert "Limit must be set" in error.value.message
    good = {**bad, "spec": {"containers": [{"name": "c", "image": "i", "resources": {"limits": {"nvidia.com/gpu": 1}}}]}}
    created = cluster.create(pods, "default", good)
    assert created["spec"]["containers"][0]["resources"]["requests"] == {"nvidia.com/gpu": "1"}
    assert created["status"]["phase"] == "Pending" and created["metadata"]["uid"]
    with pytest.raises(ApiError) as error:
        cluster.create(pods, "default", good)
    assert error.value.code == 409
    with pytest.raises(ApiError) as error:
        cluster.create(pods, "nowhere", {**good, "metadata": {"name": "x"}})
    assert error.value.code == 404
    with pytest.raises(ApiError) as error:
        cluster.create(pods, "default", {**good, "metadata": {"name": "y"},
                                         "spec": {**good["spec"], "bogus": 1}}, WriteOptions(field_validation="Strict"))
    assert error.value.code == 400 and 'unknown field "spec.bogus"' in error.value.message


def test_custom_resources_are_pruned_defaulted_and_validated():
    import yaml
    cluster = Cluster()
    crd = yaml.safe_load(third_party.file(third_party.KARPENTER, "karpenter.sh_nodepools.yaml").read_text())
    cluster.create(cluster.resource("apiextensions.k8s.io", "customresourcedefinitions"), None, crd)
    pools = cluster.resource("karpenter.sh", "nodepools")
    pool = {"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": "p"},
            "spec": {"template": {"spec": {"nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass",
                                                            "name": "c"}, "requirements": []}}, "extra": 1}}
    created = cluster.create(pools, None, pool)
    assert "extra" not in created["spec"]
    assert created["spec"]["disruption"]["consolidateAfter"] == "0s"
    with pytest.raises(ApiError) as error:
        cluster.create(pools, None, {**pool, "metadata": {"name": "q"}, "spec": {"template": {"spec": {"requirements": "x"}}}})
    assert error.value.code == 422


def test_time_slicing_and_mig_configs():
    g5 = instance_types.get("g5.2xlarge")
    config = select_config([{"metadata": {"name": "x"}, "data": {"default": (
        "version: v1\nsharing:\n  timeSlicing:\n    resources:\n    - name: nvidia.com/gpu\n      replicas: 4\n")}}], {})
    resources, labels = nvidia_resources(g5, config, {})
    assert resources == {"nvidia.com/gpu": 4} and labels["nvidia.com/gpu.replicas"] == "4"
    assert nvidia_resources(g5, {}, {})[0] == {"nvidia.com/gpu": 1}
    p4d = instance_types.get("p4d.24xlarge")
    mig, _ = nvidia_resources(p4d, {"flags": {"migStrategy": "mixed"}}, {"nvidia.com/mig.config": "all-1g.5gb"})
    assert mig == {"nvidia.com/mig-1g.5gb": 56}


def test_mig_layouts_come_from_the_catalog(monkeypatch):
    p4d = instance_types.get("p4d.24xlarge")
    mixed = {"flags": {"migStrategy": "mixed"}}
    assert nvidia_resources(p4d, mixed, {"nvidia.com/mig.config": "all-4g.20gb"})[0] == {"nvidia.com/mig-4g.20gb": 8}
    assert nvidia_resources(p4d, mixed, {})[0] == {"nvidia.com/mig-1g.5gb": 16, "nvidia.com/mig-2g.10gb": 8,
                                                   "nvidia.com/mig-3g.20gb": 8}  # unlabelled: all-balanced
    monkeypatch.setitem(instance_types.MIG_LAYOUTS["a100"], "all-1g.5gb", {"1g.5gb": 6})
    assert nvidia_resources(p4d, mixed, {"nvidia.com/mig.config": "all-1g.5gb"})[0] == {"nvidia.com/mig-1g.5gb": 48}
    monkeypatch.delitem(instance_types.MIG_LAYOUTS, "a100")
    assert nvidia_resources(p4d, mixed, {"nvidia.com/mig.config": "all-1g.5gb"})[0] == {"nvidia.com/gpu": 8}


def test_karpenter_counts_mig_slices_from_the_catalog(monkeypatch):
    from eks_hub_sandbox.kube.controllers.karpenter import Karpenter

    p4d, g5 = instance_types.get("p4d.24xlarge").labels(), instance_types.get("g5.2xlarge").labels()
    slices = {"nvidia.com/mig-1g.5gb": Fraction(56)}
    assert Karpenter._missing(slices, {}, {}, p4d) == []
    assert Karpenter._missing({"nvidia.com/mig-1g.5gb": Fraction(57)}, {}, {}, p4d) == ["nvidia.com/mig-1g.5gb"]
    assert Karpenter._missing(slices, {}, {}, g5) == ["nvidia.com/mig-1g.5gb"]  # an A10G cannot be partitioned
    monkeypatch.setitem(instance_types.MIG_LAYOUTS["a100"], "all-1g.5gb", {"1g.5gb": 6})
    assert Karpenter._missing(slices, {}, {}, p4d) == ["nvidia.com/mig-1g.5gb"]


def test_node_allocatable_is_below_capacity():
    from eks_hub_sandbox.kube import nodes

    for name in ("m5.xlarge", "g5.2xlarge", "p4d.24xlarge", "trn1.32xlarge", "inf2.xlarge", "g6.12xlarge"):
        instance = instance_types.get(name)
        capacity, allocatable = nodes.capacity(instance), nodes.allocatable(instance)
        assert 0 < allocatable["cpu"] < capacity["cpu"] and 0 < allocatable["memory"] < capacity["memory"]
        assert allocatable["pods"] == instance.max_pods
    # what the EKS AMI leaves (kube-reserved for the ENI-based max pods, 100Mi eviction) of the node's
    # MemTotal (node_figures: m5.xlarge 15888896Ki measured by Karpenter, p4d.24xlarge 1176089856Ki derived)
    formatted = {name: {k: quantity.format_for(k, v) for k, v in nodes.allocatable(instance_types.get(name)).items()}
                 for name in ("m5.xlarge", "p4d.24xlarge")}
    assert (formatted["m5.xlarge"]["cpu"], formatted["m5.xlarge"]["memory"]) == ("3920m", "14872064Ki")
    assert (formatted["p4d.24xlarge"]["cpu"], formatted["p4d.24xlarge"]["memory"]) == ("95690m", "1167424768Ki")
    assert instance_types.expected_extended_resources(instance_types.get("trn1.32xlarge"))["aws.amazon.com/neuron"] == 16


def test_eks_tokens_are_checked_for_shape_and_age():
    from eks_hub_runbook.aws import eks
    token, _ = eks.get_token("hub", "sandbox", "us-west-2")  # its shape: tests/test_eks.py
    assert eks_token_cluster(token) is not None
    assert eks_token_cluster(token, now=datetime.now(timezone.utc) + timedelta(minutes=20)) is None
    forged = "k8s-aws-v1." + base64.urlsafe_b64encode(b"https://sts.amazonaws.com/?Action=ListUsers").decode()
    assert eks_token_cluster(forged) is None and eks_token_cluster("garbage") is None


def test_service_account_tokens_are_bound_signed_and_expire(tmp_path):
    from eks_hub_sandbox.kube.auth import Authenticator, ServiceAccountTokens

    tokens = ServiceAccountTokens.load_or_create(tmp_path)
    assert (tmp_path / "service-account-key").stat().st_mode & 0o777 == 0o600
    pod = {"metadata": {"name": "hub-1", "uid": "u-1"}}
    token = tokens.issue("jupyterhub", "hub", pod, seconds=600, now=1000)
    claims = tokens.verify(token, now=1500)
    assert claims["sub"] == "system:serviceaccount:jupyterhub:hub"
    assert claims["kubernetes.io"]["pod"] == {"name": "hub-1", "uid": "u-1"}
    assert tokens.verify(token, now=1600) is None  # expired
    header, payload, signature = token.split(".")
    assert tokens.verify(f"{header}.{payload[:-2]}xy.{signature}", now=1500) is None  # tampered
    assert ServiceAccountTokens(b"another cluster").verify(token, now=1500) is None
    # the kubelet's 3607 s request gets a year, with the hour as warnafter (extended expiration)
    extended = tokens.verify(tokens.issue("jupyterhub", "hub", now=0), now=0)
    assert extended["exp"] == 365 * 24 * 3600 and extended["kubernetes.io"]["warnafter"] == 3607
    identity = Authenticator("admin", tokens).identify(f"Bearer {tokens.issue('ns', 'sa')}", "/api/v1/pods")
    assert identity.service_account == ("ns", "sa") and not identity.admin
    assert Authenticator("admin", tokens).identify("Bearer admin", "/api").admin
    assert Authenticator("admin", tokens).identify("Bearer forged.token.here", "/api/v1/pods") is None


def test_pod_address_blocks_differ_per_emulator_and_skip_listening_addresses(monkeypatch):
    from eks_hub_sandbox.kube.controllers.kubelet import network

    first, second = network.PodAddressPool("/state/a"), network.PodAddressPool("/state/b")
    assert first.block != second.block and 1 <= first.block <= 254
    taken = f"127.{first.block}.0.10"
    monkeypatch.setattr(network, "_listening_addresses", lambda: {taken})
    address = first.allocate()
    assert address == f"127.{first.block}.0.11"
    first.release(address)
    assert first.allocate() == f"127.{first.block}.0.12"  # round-robin: no immediate reuse


def test_a_listening_socket_is_seen_in_the_socket_table_and_a_closed_port_is_not():
    import socket

    from eks_hub_sandbox.kube.controllers.kubelet import network

    with socket.socket() as server:
        server.bind(("127.0.0.77", 0))
        port = server.getsockname()[1]
        assert not network.listening("127.0.0.77", port, max_age=0)  # bound, not listening yet
        server.listen()
        assert network.listening("127.0.0.77", port, max_age=0)
        assert not network.listening("127.0.0.78", port, max_age=0)
    assert not network.listening("127.0.0.77", port, max_age=0)


def test_the_kernels_listening_sockets_agree_with_proc_net_tcp():
    import socket

    from eks_hub_sandbox.kube.controllers.kubelet import network

    with socket.socket() as v4, socket.socket(socket.AF_INET6) as v6:
        v4.bind(("127.0.0.79", 0))
        v4.listen()
        v6.bind(("::", 0))
        v6.listen()
        mine = {("127.0.0.79", v4.getsockname()[1]), ("0.0.0.0", v6.getsockname()[1])}
        assert mine <= network._listening_from_netlink()
        assert mine <= network._listening_from_proc()  # other tests' sockets may come and go meanwhile
