module github.com/mqtt-rr-bench/mqtt-rr-bench/k8s/kubecheck

go 1.26
