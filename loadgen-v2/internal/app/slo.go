package app

import "github.com/mqtt-rr-bench/mqtt-rr-bench/internal/envconf"

func loadSLO(spec any) error { return envconf.Load(spec) }
