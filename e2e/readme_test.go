package e2e

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// helpVar is one row of a binary's -h table.
type helpVar struct{ name, def, desc string }

// helpTable runs bin -h and returns its variable table, cut at the column
// positions of the header (the table is aligned by text/tabwriter).
func helpTable(t *testing.T, bin string) []helpVar {
	t.Helper()
	cmd := exec.Command(bin, "-h")
	cmd.Dir = t.TempDir()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s -h: %v", bin, err)
	}
	var vars []helpVar
	var defCol, descCol int
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		line := []rune(sc.Text())
		s := string(line)
		if strings.HasPrefix(s, "VARIABLE ") {
			defCol, descCol = strings.Index(s, "DEFAULT"), strings.Index(s, "DESCRIPTION")
			continue
		}
		if descCol == 0 {
			continue
		}
		if strings.TrimSpace(s) == "" {
			break
		}
		if len(line) < descCol {
			t.Fatalf("%s -h: short row %q", bin, s)
		}
		vars = append(vars, helpVar{
			name: strings.TrimSpace(string(line[:defCol])),
			def:  strings.TrimSpace(string(line[defCol:descCol])),
			desc: strings.TrimSpace(string(line[descCol:])),
		})
	}
	if len(vars) < 10 {
		t.Fatalf("%s -h: only %d variables parsed:\n%s", bin, len(vars), out)
	}
	return vars
}

// readmeSection returns the lines of README.md under the heading `head`
// up to the next heading of the same or a higher level.
func readmeSection(t *testing.T, readme []string, head string) []string {
	t.Helper()
	level := strings.Index(head, " ")
	for i, l := range readme {
		if l != head {
			continue
		}
		var out []string
		fence := false
		for _, m := range readme[i+1:] {
			if strings.HasPrefix(m, "```") {
				fence = !fence
			}
			if h := strings.Index(m, " "); !fence && strings.HasPrefix(m, "#") && h > 0 && h <= level && strings.Trim(m[:h], "#") == "" {
				break
			}
			out = append(out, m)
		}
		return out
	}
	t.Fatalf("README.md has no heading %q", head)
	return nil
}

var backticked = regexp.MustCompile("`([A-Z][A-Z0-9_]+)`")

// tableDefaults returns the variables of the markdown table rows in lines
// (first cell: one or more `NAME`s) with the default cell of each.
func tableDefaults(lines []string) map[string]string {
	out := map[string]string{}
	for _, l := range lines {
		if !strings.HasPrefix(l, "| `") {
			continue
		}
		cells := strings.Split(l, "|")
		if len(cells) < 4 {
			continue
		}
		for _, m := range backticked.FindAllStringSubmatch(cells[1], -1) {
			out[m[1]] = strings.TrimSpace(cells[2])
		}
	}
	return out
}

// sameDefault compares a README default (its first word, thousands
// separators dropped: "100,000", "0 (off)") with the -h default.
func sameDefault(readme, help string) bool {
	if help == "" {
		return true // README may describe a computed default (hostname-pid)
	}
	f := strings.Fields(strings.ReplaceAll(readme, ",", ""))
	if len(f) == 0 {
		return false
	}
	r := strings.Trim(f[0], "`")
	if r == help {
		return true
	}
	if a, err := time.ParseDuration(r); err == nil {
		if b, err := time.ParseDuration(help); err == nil {
			return a == b
		}
	}
	if a, err := strconv.ParseFloat(r, 64); err == nil {
		if b, err := strconv.ParseFloat(help, 64); err == nil {
			return a == b
		}
	}
	return false
}

// TestReadmeVariableTables keeps README's variable tables and the binaries'
// -h in step: every variable -h prints is in the table of that binary (or,
// for the broker security variables, in the section both share) with the
// same default, and every row of a table is a variable -h prints.
func TestReadmeVariableTables(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := strings.Split(string(b), "\n")
	shared := map[string]bool{}
	for _, l := range readmeSection(t, readme, "### Both: broker security") {
		for _, m := range backticked.FindAllStringSubmatch(l, -1) {
			shared[m[1]] = true
		}
	}
	echo := filepath.Join(t.TempDir(), "rr-echo")
	if out, err := exec.Command("go", "build", "-o", echo, "../cmd/rr-echo").CombinedOutput(); err != nil {
		t.Fatalf("build rr-echo: %v\n%s", err, out)
	}
	for _, c := range []struct{ bin, heading string }{
		{filepath.Join(binDir, "loadgen-v2"), "### loadgen-v2"},
		{filepath.Join(binDir, "worker-v2"), "### worker-v2"},
		{echo, "### rr-echo"},
	} {
		t.Run(filepath.Base(c.bin), func(t *testing.T) {
			table := tableDefaults(readmeSection(t, readme, c.heading))
			help := map[string]bool{}
			for _, v := range helpTable(t, c.bin) {
				help[v.name] = true
				def, ok := table[v.name]
				switch {
				case !ok && shared[v.name]:
				case !ok:
					t.Errorf("README %q lacks %s: add the row | `%s` | %s | %s |", c.heading, v.name, v.name, v.def, v.desc)
				case !sameDefault(def, v.def):
					t.Errorf("README %q: %s default %q, -h says %q", c.heading, v.name, def, v.def)
				}
			}
			for name := range table {
				if !help[name] {
					t.Errorf("README %q lists %s, which %s -h does not print", c.heading, name, filepath.Base(c.bin))
				}
			}
		})
	}
}

// composeEnv parses the environment blocks of docker-compose.production.yml:
// service → container variable → host variable read ("" for a literal
// value), with its default after ":-".
type composeVar struct{ host, def string }

func composeEnv(t *testing.T) map[string]map[string]composeVar {
	t.Helper()
	b, err := os.ReadFile("../docker-compose.production.yml")
	if err != nil {
		t.Fatal(err)
	}
	ref := regexp.MustCompile(`^\$\{([A-Z0-9_]+)(?::-(.*))?\}$`)
	out := map[string]map[string]composeVar{}
	anchors := map[string]map[string]composeVar{}
	var block map[string]composeVar
	for _, l := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimSpace(l)
		indent := len(l) - len(strings.TrimLeft(l, " "))
		switch {
		case strings.HasPrefix(l, "x-") && strings.Contains(l, "&"):
			block = map[string]composeVar{}
			anchors[strings.TrimSpace(l[strings.Index(l, "&")+1:])] = block
		case indent == 2 && strings.HasSuffix(trimmed, ":") && !strings.HasPrefix(trimmed, "#"):
			block = nil
			out[strings.TrimSuffix(trimmed, ":")] = nil
		case indent == 4 && trimmed == "environment:":
			for name, v := range out {
				if v == nil {
					block = map[string]composeVar{}
					out[name] = block
				}
			}
		case indent == 4:
			if !strings.HasPrefix(trimmed, "#") && !strings.HasPrefix(l, "x-") {
				block = nil
			}
		case block != nil && strings.HasPrefix(trimmed, "<<: *"):
			for k, v := range anchors[strings.TrimPrefix(trimmed, "<<: *")] {
				block[k] = v
			}
		case block != nil && (indent == 2 || indent == 6) && !strings.HasPrefix(trimmed, "#") && strings.Contains(trimmed, ":"):
			k, v, _ := strings.Cut(trimmed, ":")
			v = strings.Trim(strings.TrimSpace(v), `"`)
			switch m := ref.FindStringSubmatch(v); {
			case v == "":
				block[k] = composeVar{host: k} // bare NAME: taken from the shell, unset otherwise
			case m != nil:
				block[k] = composeVar{host: m[1], def: m[2]}
			default:
				block[k] = composeVar{def: v}
			}
		}
	}
	return out
}

// TestReadmeComposeForwardsVariables: docker-compose.production.yml reads
// every variable of both binaries from the shell (so `make up NAME=value`
// is never silently ignored), under a host name that means one thing (a
// name both binaries read with different defaults is prefixed), with the
// binary's default.
func TestReadmeComposeForwardsVariables(t *testing.T) {
	// Files inside the container: not forwarded (see the compose file).
	notForwarded := map[string]bool{"TLS_CA_FILE": true, "TLS_CERT_FILE": true, "TLS_KEY_FILE": true,
		"TLS_SERVER_NAME": true, "TLS_INSECURE": true, "MQTT_PASSWORD_FILE": true}
	// Deliberately different in Compose: the brokers, the fixed listen
	// addresses, the loadgen instance identity.
	ownDefault := map[string]bool{"BROKER": true, "MQTT_BROKER": true, "INSTANCE_ID": true, "CLIENT_ID_OFFSET": true}
	env := composeEnv(t)
	helpDefault := map[string]map[string]string{}
	for svc, bin := range map[string]string{"loadgen-v2": "loadgen-v2", "worker-v2": "worker-v2"} {
		helpDefault[svc] = map[string]string{}
		for _, v := range helpTable(t, filepath.Join(binDir, bin)) {
			helpDefault[svc][v.name] = v.def
		}
	}
	hostUse := map[string]map[string]string{} // host variable → service → container variable
	for svc, defs := range helpDefault {
		senv := env[svc]
		if len(senv) == 0 {
			t.Fatalf("no environment parsed for service %s", svc)
		}
		for name, def := range defs {
			cv, ok := senv[name]
			switch {
			case notForwarded[name]:
				continue
			case !ok:
				t.Errorf("%s: docker-compose.production.yml does not pass %s (add `%s:` or `%s: ${%s:-%s}`)", svc, name, name, name, name, def)
				continue
			case cv.host != "" && cv.def != "" && !ownDefault[name] && !sameDefault(cv.def, def):
				t.Errorf("%s: %s defaults to %q in Compose, %q in -h", svc, name, cv.def, def)
			}
			if cv.host != "" {
				if hostUse[cv.host] == nil {
					hostUse[cv.host] = map[string]string{}
				}
				hostUse[cv.host][svc] = name
			}
		}
	}
	for host, uses := range hostUse {
		lg, ok1 := uses["loadgen-v2"]
		wk, ok2 := uses["worker-v2"]
		if ok1 && ok2 && (lg != wk || helpDefault["loadgen-v2"][lg] != helpDefault["worker-v2"][wk]) {
			t.Errorf("host variable %s feeds loadgen %s (default %q) and worker %s (default %q): prefix it per side",
				host, lg, helpDefault["loadgen-v2"][lg], wk, helpDefault["worker-v2"][wk])
		}
	}
}
