package config

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/cliutil"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/envconf"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/wire"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/worker-v2/internal/modes"
)

// Validate returns every rule c breaks joined (errors.Join), each naming
// the variable, its value and the rule (e.g. "MIN_WORKERS=50 is greater
// than MAX_WORKERS=10"); nil when c is valid. It is pure: it changes nothing;
// it reads only the files that MQTT_PASSWORD_FILE, TLS_*_FILE and
// RESPONSE_TEMPLATE=@path name. envconf.Load calls it and words the
// problems under envconf.ErrInvalid, one a line.
func (c *Config) Validate() error { return errors.Join(c.problems()...) }

// problems returns every rule c breaks, in the order of the table below.
func (c *Config) problems() []error {
	chk := envconf.Check
	errs := []error{
		chk(validFilter(c.Sub), "MQTT_SUB", c.Sub, "must be a topic filter ('+' and '#' alone in a level, '#' last)"),
		chk(!strings.HasPrefix(c.Sub, "$share/"), "MQTT_SUB", c.Sub, "must not start with $share/ (set SHARE_GROUP and SHARED_SUBSCRIPTION instead)"),
		chk(c.Connections >= 1 && c.Connections <= MaxConnections, "CONNECTIONS", c.Connections, fmt.Sprintf("must be between 1 and %d", MaxConnections)),
		chk(c.MinWorkers >= 1, "MIN_WORKERS", c.MinWorkers, "must be at least 1"),
		chk(c.MaxWorkers >= 1 && c.MaxWorkers <= MaxWorkersCap, "MAX_WORKERS", c.MaxWorkers, fmt.Sprintf("must be between 1 and %d", MaxWorkersCap)),
		chk(c.QueueCap >= 1 && c.QueueCap <= MaxQueueCap, "QUEUE_CAP", c.QueueCap, fmt.Sprintf("must be between 1 and %d", MaxQueueCap)),
		chk(c.ScaleUp > 0 && c.ScaleUp < 1, "SCALE_UP_THRESHOLD", c.ScaleUp, "must be between 0 and 1 (exclusive)"),
		chk(c.ScaleDown > 0 && c.ScaleDown < 1, "SCALE_DOWN_THRESHOLD", c.ScaleDown, "must be between 0 and 1 (exclusive)"),
		chk(c.QueueMaxBytes >= MinQueueBytes && c.QueueMaxBytes <= MaxQueueBytes, "QUEUE_MAX_BYTES", c.QueueMaxBytes, fmt.Sprintf("must be between %d (64 KiB) and %d (64 GiB)", MinQueueBytes, MaxQueueBytes)),
		chk(c.ScaleInterval >= 10*time.Millisecond, "SCALE_INTERVAL", c.ScaleInterval, "must be at least 10ms"),
		chk(c.ScaleTarget > 0 && c.ScaleTarget <= 1, "SCALE_TARGET_UTILIZATION", c.ScaleTarget, "must be above 0 and at most 1"),
		chk(c.ScaleMaxWait >= 10*time.Millisecond && c.ScaleMaxWait <= time.Hour, "SCALE_MAX_WAIT", c.ScaleMaxWait, "must be between 10ms and 1h"),
		chk(c.ScaleDownWindow >= 0 && c.ScaleDownWindow <= 24*time.Hour, "SCALE_DOWN_WINDOW", c.ScaleDownWindow, "must be between 0s and 24h"),
		chk(validMode(c.Mode), "MODE", c.Mode, "must be health, sleep or cpu"),
		chk(c.SleepMS >= 0 && c.SleepMS <= 3_600_000, "SLEEP_MS", c.SleepMS, "must be between 0 and 3600000"),
		chk(c.SleepJitterMS >= 0 && c.SleepJitterMS <= 3_600_000, "SLEEP_JITTER_MS", c.SleepJitterMS, "must be between 0 and 3600000"),
		chk(c.CPUIterations >= 0 && c.CPUIterations <= 1_000_000_000, "CPU_ITERATIONS", c.CPUIterations, "must be between 0 and 1000000000"),
		chk(c.ShutdownTimeout > 0, "SHUTDOWN_TIMEOUT", c.ShutdownTimeout, "must be positive"),
		chk(c.QoS >= 0 && c.QoS <= 2, "QOS", c.QoS, "must be 0, 1 or 2"),
		chk(c.WriteLinger >= 0 && c.WriteLinger <= time.Second, "WRITE_LINGER", c.WriteLinger, "must be between 0 and 1s"),
		chk(c.KeepAlive >= time.Second && c.KeepAlive <= 65535*time.Second, "KEEPALIVE", c.KeepAlive, "must be between 1s and 18h12m15s (MQTT's 65535 s)"),
		chk(len(c.ClientIDPrefix) <= 200, "CLIENT_ID_PREFIX", c.ClientIDPrefix, "must be at most 200 bytes"),
		chk(validLevel(c.LogLevel), "LOG_LEVEL", c.LogLevel, "must be debug, info, warn or error"),
	}
	if c.Shared {
		errs = append(errs, chk(c.ShareGroup != "", "SHARE_GROUP", c.ShareGroup,
			"must not be empty while SHARED_SUBSCRIPTION=true (set SHARED_SUBSCRIPTION=false for a plain subscription)"))
		if c.ShareGroup != "" {
			errs = append(errs, chk(wire.ValidTopicName(c.ShareGroup), "SHARE_GROUP", c.ShareGroup, "must be 1-255 bytes without '/', '+', '#'"))
		}
	}
	errs = append(errs, c.splitProblems()...)
	if c.MinWorkers > c.MaxWorkers {
		errs = append(errs, fmt.Errorf("MIN_WORKERS=%d is greater than MAX_WORKERS=%d", c.MinWorkers, c.MaxWorkers))
	}
	if c.ScaleDown >= c.ScaleUp {
		errs = append(errs, fmt.Errorf("SCALE_DOWN_THRESHOLD=%v must be below SCALE_UP_THRESHOLD=%v", c.ScaleDown, c.ScaleUp))
	}
	for _, f := range c.replyFilters() {
		if f = strings.TrimSpace(f); !wire.ValidFilter(f) {
			errs = append(errs, envconf.Check(false, "REPLY_TOPIC_ALLOW", c.ReplyAllow, fmt.Sprintf("must be comma-separated topic filters ('+' and '#' alone in a level, '#' last); %q is not one", f)))
			break
		}
	}
	errs = append(errs, c.Security.Validate("MQTT_BROKER", c.Broker)...)
	if c.BrokerAlias != "" {
		errs = append(errs, c.Security.Validate("BROKER", c.BrokerAlias)...)
	}
	_, perrs := c.parseProtocol()
	errs = append(errs, perrs...)
	return slices.DeleteFunc(errs, func(err error) bool { return err == nil })
}

func validMode(m string) bool {
	switch m {
	case modes.Health, modes.Sleep, modes.CPU:
		return true
	}
	return false
}

// validLevel: LOG_LEVEL as slog parses it (cliutil.ParseLevel).
func validLevel(s string) bool {
	_, err := cliutil.ParseLevel(s)
	return err == nil
}

// validFilter reports whether f is an MQTT topic filter: non-empty, no NUL,
// '+' and '#' only as a whole level, '#' only as the last level.
func validFilter(f string) bool {
	if f == "" || len(f) > wire.MaxTopicLen || strings.IndexByte(f, 0) >= 0 {
		return false
	}
	levels := strings.Split(f, "/")
	for i, l := range levels {
		if strings.ContainsAny(l, "+#") && l != "+" && l != "#" {
			return false
		}
		if l == "#" && i != len(levels)-1 {
			return false
		}
	}
	return true
}

// splitProblems checks WORKER_COUNT, WORKER_INDEX and SHARDS.
func (c *Config) splitProblems() []error {
	chk := envconf.Check
	errs := []error{
		chk(c.WorkerCount >= 1 && c.WorkerCount <= 65536, "WORKER_COUNT", c.WorkerCount, "must be between 1 and 65536"),
		chk(c.Shards >= 1 && c.Shards <= 65536, "SHARDS", c.Shards, "must be between 1 and 65536"),
	}
	idx, err := c.Index()
	if err != nil {
		errs = append(errs, err)
	} else if c.WorkerCount >= 1 {
		errs = append(errs, chk(idx < c.WorkerCount, "WORKER_INDEX", c.WorkerIndex, fmt.Sprintf("must be below WORKER_COUNT=%d", c.WorkerCount)))
	}
	if c.WorkerCount > 1 {
		errs = append(errs,
			chk(!c.Shared, "WORKER_COUNT", c.WorkerCount, "above 1 needs SHARED_SUBSCRIPTION=false (with shared subscriptions the broker splits the requests)"),
			chk(strings.Count(c.Sub, "+") == 1 && !strings.Contains(c.Sub, "#"), "MQTT_SUB", c.Sub, "must have one '+' level (the shard) and no '#' when WORKER_COUNT is above 1"),
			chk(c.WorkerCount <= c.Shards, "WORKER_COUNT", c.WorkerCount, fmt.Sprintf("must be at most SHARDS=%d (an instance without a shard would answer nothing)", c.Shards)))
	}
	return errs
}

// Index returns WORKER_INDEX: a number, or with "auto" the trailing -N of
// the hostname (the ordinal of a Kubernetes StatefulSet pod).
func (c *Config) Index() (int, error) {
	v := c.WorkerIndex
	if v == "auto" {
		h, _ := os.Hostname()
		i := strings.LastIndexByte(h, '-')
		if i < 0 {
			return 0, fmt.Errorf("WORKER_INDEX=auto: hostname %q has no trailing -N", h)
		}
		v = h[i+1:]
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("WORKER_INDEX=%q must be a number from 0 or auto (the hostname's trailing -N)", c.WorkerIndex)
	}
	return n, nil
}
