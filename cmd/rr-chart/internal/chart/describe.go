package chart

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// Describe says what steps measured, for a chart's title: their brokers,
// offered rates and measured durations (with the warm-up left out before
// them), read from the reports, e.g. "broker mosquitto, embedded · 10k
// req/s · 8 s measured after a 2 s warm-up". A closed-loop step (rr-echo)
// has no offered rate. "" when the steps say none of it.
func Describe(steps []Step) string {
	var brokers []string
	var rates, durations, warmups []float64
	closed := false
	for _, st := range steps {
		if st.Broker != "" && !slices.Contains(brokers, st.Broker) {
			brokers = append(brokers, st.Broker)
		}
		switch {
		case st.TargetRPS > 0:
			rates = addValue(rates, st.TargetRPS)
		case st.ThroughputRPS > 0:
			closed = true
		}
		if st.DurationS > 0 {
			durations = addValue(durations, st.DurationS)
			warmups = addValue(warmups, st.WarmupS)
		}
	}
	var parts []string
	switch {
	case len(brokers) > 3:
		parts = append(parts, fmt.Sprintf("%d brokers", len(brokers)))
	case len(brokers) > 0:
		parts = append(parts, "broker "+strings.Join(brokers, ", "))
	}
	if len(rates) > 0 {
		parts = append(parts, values(rates, Compact)+" req/s")
	}
	if closed {
		parts = append(parts, "closed loop")
	}
	if len(durations) > 0 {
		d := values(durations, trim) + " s measured"
		if len(warmups) > 1 || len(warmups) == 1 && warmups[0] > 0 {
			d += " after a " + values(warmups, trim) + " s warm-up"
		}
		parts = append(parts, d)
	}
	return strings.Join(parts, " · ")
}

// addValue adds v to the sorted set vs.
func addValue(vs []float64, v float64) []float64 {
	i, found := slices.BinarySearch(vs, v)
	if found {
		return vs
	}
	return slices.Insert(vs, i, v)
}

// values prints a sorted set: "10k", "10k, 20k, 30k", or "5k to 40k" for
// more than three.
func values(vs []float64, f func(float64) string) string {
	if len(vs) > 3 {
		return f(vs[0]) + " to " + f(vs[len(vs)-1])
	}
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = f(v)
	}
	return strings.Join(s, ", ")
}

// brokerName is a report's broker: the benchmark script's name for it
// (mosquitto, embedded) when it added one, else the URL without its user
// information.
func brokerName(named, rawURL string) string {
	if named != "" || rawURL == "" {
		return named
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return ""
	}
	u.User = nil
	return u.String()
}
