package metrics

import (
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// Version is the version the build_info metric reports. Set it at build
// time with -ldflags "-X github.com/mqtt-rr-bench/mqtt-rr-bench/internal/metrics.Version=0.1.0";
// unset, it is the main module's version from the build information
// ("devel" for a build from a work tree).
var Version string

// BuildInfo returns the gauge mqttrr_{subsystem}_build_info (value 1) whose
// labels say which build serves the metrics: version (Version), revision (the
// VCS commit the binary was built from, with "-dirty" for uncommitted
// changes; "unknown" when the build recorded none) and go_version.
func BuildInfo(subsystem string) prometheus.Collector {
	version, revision := buildVersion()
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: Namespace, Subsystem: subsystem, Name: "build_info",
		Help:        "The build serving these metrics: version, VCS revision and Go version (value 1).",
		ConstLabels: prometheus.Labels{"version": version, "revision": revision, "go_version": runtime.Version()},
	}, func() float64 { return 1 })
}

func buildVersion() (version, revision string) {
	version, revision = Version, "unknown"
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		if version == "" {
			version = "devel"
		}
		return version, revision
	}
	if version == "" {
		version = strings.Trim(bi.Main.Version, "()")
	}
	if version == "" {
		version = "devel"
	}
	var dirty bool
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if dirty && revision != "unknown" {
		revision += "-dirty"
	}
	return version, revision
}

// VersionLine is what `--version` prints for the command name: its version,
// revision and Go version (the build_info labels).
func VersionLine(name string) string {
	version, revision := buildVersion()
	return name + " " + version + " (revision " + revision + ", " + runtime.Version() + ")"
}
