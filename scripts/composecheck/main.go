// Command composecheck loads docker-compose.production.yml the way Docker
// Compose itself does, with compose-go (interpolation, profiles, extends,
// the Compose JSON schema), without a Docker engine, and checks what
// `make up` and `make up-fleet` (scripts/compose-fleet.sh) rely on:
//
//   - the file loads with the default profile and with the monitoring
//     profile, and its services are the expected ones;
//   - loadgen-v2 passes every FLEET_* variable and mounts a writable
//     /reports (index 0 writes FLEET_RESULTS there). Its restart policy
//     does not reach a fleet: compose-fleet.sh starts the instances with
//     `docker compose run`, which clears the service's restart (and
//     deploy.restart_policy) for its one-off containers;
//   - the loadgen's values interpolate from the environment, as a fleet
//     instance gets them: FLEET_ID, FLEET_SIZE and FLEET_INDEX set in the
//     environment arrive in the service.
//
// Usage: go run . [FILE]   (default ../../docker-compose.production.yml)
// Prints one line per check; exits 1 with a line per problem.
package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

func main() { os.Exit(run(os.Args[1:])) }

// fleetVars are loadgen-v2's fleet variables (README "Fleet runs").
var fleetVars = []string{"FLEET_ID", "FLEET_SIZE", "FLEET_INDEX", "FLEET_COORDINATOR", "FLEET_TIMEOUT", "FLEET_START_DELAY", "FLEET_RESULTS"}

func run(args []string) int {
	file := "../../docker-compose.production.yml"
	if len(args) > 0 {
		file = args[0]
	}
	var problems []string
	fail := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }

	for _, profiles := range [][]string{nil, {"monitoring"}} {
		p, err := load(file, profiles, nil)
		if err != nil {
			fail("%s (profiles %v) does not load: %v", file, profiles, err)
			continue
		}
		fmt.Printf("%s, profiles %v: services %s\n", file, profiles, strings.Join(names(p), " "))
	}

	env := map[string]string{"FLEET_ID": "fleet-check", "FLEET_SIZE": "3", "FLEET_INDEX": "2"}
	p, err := load(file, nil, env)
	if err != nil {
		fail("%s does not load with a fleet's environment: %v", file, err)
	} else if lg, err := p.GetService("loadgen-v2"); err != nil {
		fail("no service loadgen-v2: %v", err)
	} else {
		before := len(problems)
		for _, v := range fleetVars {
			if _, ok := lg.Environment[v]; !ok {
				fail("loadgen-v2 does not pass %s (add `%s:` to its environment): a fleet instance would not get it", v, v)
			}
		}
		for k, want := range env {
			if got := lg.Environment[k]; got == nil || *got != want {
				fail("loadgen-v2: %s=%s in the environment arrives as %v", k, want, deref(got))
			}
		}
		if !slices.ContainsFunc(lg.Volumes, func(v types.ServiceVolumeConfig) bool { return v.Target == "/reports" && !v.ReadOnly }) {
			fail("loadgen-v2 mounts no writable /reports: index 0 of a fleet writes FLEET_RESULTS there (scripts/compose-fleet.sh copies it out)")
		}
		if !lg.ReadOnly {
			fail("loadgen-v2 is not read_only")
		}
		if len(problems) == before {
			fmt.Printf("loadgen-v2: passes %s (FLEET_ID, FLEET_SIZE, FLEET_INDEX from the environment arrive); /reports writable\n", strings.Join(fleetVars, " "))
		}
	}
	for _, p := range problems {
		fmt.Println("FAIL", p)
	}
	if len(problems) > 0 {
		return 1
	}
	return 0
}

// load loads file as Docker Compose does, with env on top of the process
// environment.
func load(file string, profiles []string, env map[string]string) (*types.Project, error) {
	opts := []cli.ProjectOptionsFn{cli.WithOsEnv, cli.WithName("mqtt-rr-bench")}
	if len(profiles) > 0 {
		opts = append(opts, cli.WithProfiles(profiles))
	}
	if len(env) > 0 {
		var kv []string
		for k, v := range env {
			kv = append(kv, k+"="+v)
		}
		opts = append(opts, cli.WithEnv(kv))
	}
	o, err := cli.NewProjectOptions([]string{file}, opts...)
	if err != nil {
		return nil, err
	}
	return o.LoadProject(context.Background())
}

func names(p *types.Project) []string {
	var out []string
	for n := range p.Services {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func deref(s *string) string {
	if s == nil {
		return "<unset>"
	}
	return *s
}
