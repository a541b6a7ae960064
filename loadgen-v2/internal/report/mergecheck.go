package report

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/config"
)

// configsOf parses each report's config object (nil: the report carries
// none).
func configsOf(rs []*Report) ([]map[string]json.RawMessage, error) {
	cfgs := make([]map[string]json.RawMessage, len(rs))
	for i, r := range rs {
		if b := bytes.TrimSpace(r.Config); len(b) == 0 || string(b) == "null" {
			continue
		}
		if err := json.Unmarshal(r.Config, &cfgs[i]); err != nil {
			return nil, fmt.Errorf("%s: its config is not a JSON object (a damaged file? take the report again from the instance): %w", label(rs, i), err)
		}
	}
	return cfgs, nil
}

// placed is a run and the index of the report it came from.
type placed struct {
	Run
	report int
}

// refusals returns why rs must not be merged, each problem naming the
// reports and what to do; none when they may be.
func refusals(rs []*Report, runs [][]Run, cfgs []map[string]json.RawMessage) []string {
	var problems []string
	// The same run twice: by run id, or for reports without runs by their
	// figures. Later copies are left out of the checks below.
	var unique []placed
	seen := map[string]int{}
	copies := map[int]bool{} // reports holding a run seen before: left out of the settings check
	for i, r := range rs {
		if len(r.Runs) == 0 {
			key := fmt.Sprintf("report %q %+v %+v %s", r.Instances, r.Counts, r.Warmup, r.Histograms.Latency)
			if j, ok := seen[key]; ok {
				problems = append(problems, fmt.Sprintf("the same report twice: %s and %s have the same instances (%s), counts and latency "+
					"histogram; give each instance's report once", position(rs, j), position(rs, i), strings.Join(r.Instances, ", ")))
				copies[i] = true
				continue
			}
			seen[key] = i
		}
		for _, run := range runs[i] {
			if run.RunID != "" {
				key := "run " + run.Instance + "\x00" + run.RunID
				if j, ok := seen[key]; ok {
					problems = append(problems, fmt.Sprintf("the same run twice: %s and %s both hold run %s of instance %s "+
						"(the same report given twice?); give each instance's report once", position(rs, j), position(rs, i), run.RunID, run.name()))
					copies[i] = true
					continue
				}
				seen[key] = i
			}
			unique = append(unique, placed{run, i})
		}
	}
	problems = append(problems, overlaps(rs, unique)...)
	sameFleet := fleetOf(rs) != nil
	problems = append(problems, settingDiffs(rs, cfgs, copies, sameFleet)...)
	if sameFleet {
		problems = append(problems, fleetIndexes(rs, unique)...)
	}
	return problems
}

// overlaps returns a problem for every run whose virtual clients
// [first_client, first_client+clients) intersect an earlier run's (in the
// order of first_client): each is compared with the run reaching furthest
// so far, which catches every intersection.
func overlaps(rs []*Report, runs []placed) []string {
	var ranged []placed
	for _, r := range runs {
		if r.Clients > 0 {
			ranged = append(ranged, r)
		}
	}
	slices.SortStableFunc(ranged, func(a, b placed) int { return cmp.Compare(a.FirstClient, b.FirstClient) })
	var problems []string
	var reach placed               // the run with the furthest end so far
	end := func(p placed) uint64 { // saturating: a hostile report may claim any range
		if e := p.FirstClient + p.Clients; e >= p.FirstClient {
			return e
		}
		return math.MaxUint64
	}
	for i, r := range ranged {
		if i > 0 && r.FirstClient < end(reach) {
			problems = append(problems, fmt.Sprintf("virtual clients %d-%d of %s (%s) and %d-%d of %s (%s) overlap: the same virtual clients "+
				"ran in two instances, so the merged counts hold them twice (and where the instances share response topics they took "+
				"each other's responses); give each instance its own range (FLEET_INDEX in a fleet, else distinct CLIENT_ID_OFFSET or "+
				"CLIENT_ID_OFFSET=auto)", reach.FirstClient, end(reach)-1, reach.name(), label(rs, reach.report),
				r.FirstClient, end(r)-1, r.name(), label(rs, r.report)))
		}
		if i == 0 || end(r) > end(reach) {
			reach = r
		}
	}
	return problems
}

// settingDiffs returns a problem for every setting of config.FleetSettings
// whose value differs between the reports that carry a config: "QOS: 0 in
// a.json, 1 in b.json". FLEET_SIZE counts only when all reports belong to
// one fleet (reports of different fleets get a WARNING instead). Reports
// in skip (copies of others) are left out.
func settingDiffs(rs []*Report, cfgs []map[string]json.RawMessage, skip map[int]bool, sameFleet bool) []string {
	var problems []string
	protocolNamed := false // MQTT_VERSION or CORRELATE differ
	for _, name := range config.FleetSettings {
		if name == "fleet_size" && !sameFleet {
			continue
		}
		diff, ok := grouped(rs, func(i int) (string, bool) {
			if cfgs[i] == nil || skip[i] {
				return "", false
			}
			return settingValue(cfgs[i], name), true
		})
		if !ok {
			continue
		}
		protocolNamed = protocolNamed || name == "mqtt_version" || name == "correlate"
		problems = append(problems, fmt.Sprintf("%s: %s; the instances ran with different settings, so their sums mean nothing: "+
			"merge only reports of runs with one %s", SettingEnv(name), diff, SettingEnv(name)))
	}
	if protocolNamed {
		return problems
	}
	// The resolved protocol, for reports without a config too.
	if diff, ok := grouped(rs, func(i int) (string, bool) {
		return fmt.Sprintf("MQTT %s / %s", rs[i].Protocol, rs[i].Correlation), !skip[i]
	}); ok {
		problems = append(problems, fmt.Sprintf("protocol and correlation: %s; responses were matched differently: merge only reports "+
			"of one MQTT_VERSION and CORRELATE", diff))
	}
	return problems
}

// grouped lists the reports by their value (value's ok false: left out),
// in the order of first appearance: "0 in a.json, 1 in b.json and c.json".
// ok is false when they all have one value.
func grouped(rs []*Report, value func(i int) (v string, ok bool)) (string, bool) {
	type group struct {
		value string
		names []string
	}
	var groups []group
	for i := range rs {
		v, ok := value(i)
		if !ok {
			continue
		}
		k := slices.IndexFunc(groups, func(g group) bool { return g.value == v })
		if k < 0 {
			groups, k = append(groups, group{value: v}), len(groups)
		}
		groups[k].names = append(groups[k].names, label(rs, i))
	}
	if len(groups) < 2 {
		return "", false
	}
	parts := make([]string, len(groups))
	for i, g := range groups {
		parts[i] = g.value + " in " + listNames(g.names)
	}
	return strings.Join(parts, ", "), true
}

// fleetIndexes returns a problem for every FLEET_INDEX held by two runs of
// one fleet.
func fleetIndexes(rs []*Report, runs []placed) []string {
	var problems []string
	first := map[int]placed{}
	for _, r := range runs {
		if r.FleetIndex == nil {
			continue
		}
		if p, ok := first[*r.FleetIndex]; ok {
			problems = append(problems, fmt.Sprintf("FLEET_INDEX %d twice in fleet %s: %s (%s) and %s (%s); each instance of a fleet "+
				"needs its own index (FLEET_INDEX, or an Indexed Job's completion index)", *r.FleetIndex, rs[0].Fleet.ID,
				p.name(), label(rs, p.report), r.name(), label(rs, r.report)))
			continue
		}
		first[*r.FleetIndex] = r
	}
	return problems
}

// mergeWarnings adds the warnings about what was merged (not about the
// figures): reports whose settings could not be compared, reports of
// different fleets, a fleet merged without all its instances.
func mergeWarnings(w *Report, rs []*Report, cfgs []map[string]json.RawMessage, fleet *Fleet, runs []Run) {
	var noConfig []string
	for i, cfg := range cfgs {
		if cfg == nil {
			noConfig = append(noConfig, label(rs, i))
		}
	}
	if len(rs) > 1 && len(noConfig) > 0 {
		w.Warn(WarnKindSettingsUnchecked, "%s carry no configuration: their settings (%s) were not compared with the others'",
			listNames(noConfig), listNames(fleetEnvNames()))
	}
	if fleet == nil {
		if diff, ok := grouped(rs, func(i int) (string, bool) {
			if f := rs[i].Fleet; f != nil {
				return "fleet " + f.ID, true
			}
			return "no fleet", true
		}); ok {
			w.Warn(WarnKindFleets, "the reports come from different fleets (%s): merged as instances side by side; the merged report "+
				"carries no fleet id", diff)
		}
		return
	}
	if fleet.Size <= 0 {
		return
	}
	have := map[int]bool{}
	for _, r := range runs {
		if r.FleetIndex != nil {
			have[*r.FleetIndex] = true
		}
	}
	var missing []string
	for i := range fleet.Size {
		if !have[i] {
			missing = append(missing, fmt.Sprint(i))
		}
	}
	if len(missing) > 0 {
		w.Warn(WarnKindFleetIncomplete, "fleet %s: %d of FLEET_SIZE=%d instances merged (index %s missing): the merged report is not "+
			"the whole fleet's load", fleet.ID, fleet.Size-len(missing), fleet.Size, listNames(missing))
	}
}

// fleetEnvNames are the environment variables of config.FleetSettings.
func fleetEnvNames() []string {
	names := make([]string, len(config.FleetSettings))
	for i, s := range config.FleetSettings {
		names[i] = SettingEnv(s)
	}
	return names
}
