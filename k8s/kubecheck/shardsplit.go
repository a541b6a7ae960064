package main

import "strconv"

// checkShardSplit applies the rule of worker-v2's shard split (for brokers
// without shared subscriptions): a container with WORKER_COUNT above 1
// splits the request shards only with SHARED_SUBSCRIPTION="false", and with
// WORKER_INDEX=auto (the pod's ordinal is the index) it must run in a
// StatefulSet of exactly WORKER_COUNT replicas: with more pods one exits 2
// (WORKER_INDEX out of range), with fewer some shards go unanswered.
func checkShardSplit(w workload, fail func(format string, a ...any)) {
	for _, c := range w.template.Spec.Containers {
		env := map[string]string{}
		for _, e := range c.Env {
			if e.ValueFrom == nil {
				env[e.Name] = e.Value
			}
		}
		s, ok := env["WORKER_COUNT"]
		if !ok {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			fail("container %q: WORKER_COUNT=%q is not a whole number of at least 1", c.Name, s)
			continue
		}
		if n == 1 {
			continue
		}
		if env["SHARED_SUBSCRIPTION"] != "false" {
			fail("container %q: WORKER_COUNT=%d splits the request shards only with SHARED_SUBSCRIPTION=\"false\"", c.Name, n)
		}
		if env["WORKER_INDEX"] != "auto" {
			continue // an index written per workload
		}
		switch {
		case kindOf(w.o) != "StatefulSet":
			fail("container %q: WORKER_INDEX=auto needs a StatefulSet (the pod's ordinal is its index)", c.Name)
		case w.replicas == nil || int(*w.replicas) != n:
			got := "unset"
			if w.replicas != nil {
				got = strconv.Itoa(int(*w.replicas))
			}
			fail("spec.replicas is %s but container %q splits the request shards WORKER_COUNT=%d ways: set both to the same number", got, c.Name, n)
		}
	}
}
