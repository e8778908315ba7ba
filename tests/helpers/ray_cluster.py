"""A two-node Ray cluster on 127.0.0.1 for the tests: a head node and one more worker node, each
its own processes (GCS server and raylets), one CPU each. Prints ``{"address": …}`` on one line,
then keeps the cluster up until its stdin closes, and stops every node."""

import json
import sys

from ray.cluster_utils import Cluster

cluster = Cluster(initialize_head=True, shutdown_at_exit=True,
                  head_node_args={"node_ip_address": "127.0.0.1", "num_cpus": 1, "include_dashboard": False})
cluster.add_node(node_ip_address="127.0.0.1", num_cpus=1)
print(json.dumps({"address": cluster.address}), flush=True)
sys.stdin.read()
cluster.shutdown()
