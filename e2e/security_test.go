package e2e

// Broker security end to end: a Mosquitto TLS listener with a throwaway CA,
// password authentication (mosquitto_passwd) and, for mTLS, required client
// certificates. Both binaries must connect with the right settings, fail
// fast and clearly with the wrong ones, and never reveal the password.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/brokertest"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mosquitto"
)

// pki is a throwaway CA with a server and a client certificate, as PEM files.
type pki struct {
	CA, ServerCert, ServerKey, ClientCert, ClientKey string
}

func newPKI(t *testing.T) pki {
	t.Helper()
	dir := t.TempDir()
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mqtt-rr-bench e2e CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage, dns []string, ips []net.IP) (string, string) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			DNSNames: dns, IPAddresses: ips,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		k, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return write(name+".pem", "CERTIFICATE", der), write(name+".key", "PRIVATE KEY", k)
	}
	p := pki{CA: write("ca.pem", "CERTIFICATE", caDER)}
	p.ServerCert, p.ServerKey = leaf("server", 2, x509.ExtKeyUsageServerAuth, []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)})
	p.ClientCert, p.ClientKey = leaf("client", 3, x509.ExtKeyUsageClientAuth, nil, nil)
	return p
}

// secret is a broker login: the password is random so that finding it in an
// output cannot be a coincidence.
type secret struct {
	User, Password, File string // File holds the password (for MQTT_PASSWORD_FILE)
	PasswdFile           string // Mosquitto's password_file; "" when mosquitto_passwd is absent
}

func newSecret(t *testing.T) secret {
	t.Helper()
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	s := secret{User: "bench", Password: "pw-" + hex.EncodeToString(b)}
	dir := t.TempDir()
	s.File = filepath.Join(dir, "password")
	if err := os.WriteFile(s.File, []byte(s.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bin, err := exec.LookPath("mosquitto_passwd")
	if err != nil {
		return s
	}
	s.PasswdFile = filepath.Join(dir, "mosquitto.passwd")
	if out, err := exec.Command(bin, "-c", "-b", s.PasswdFile, s.User, s.Password).CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd: %v: %s", err, out)
	}
	return s
}

func (s secret) requirePasswd(t *testing.T) {
	t.Helper()
	if s.PasswdFile == "" {
		brokertest.Unavailable(t, "mosquitto_passwd not installed (it comes with the mosquitto package): password authentication not tested")
	}
}

// startTLSBroker starts Mosquitto with only a TLS listener on a free loopback
// port: password authentication when s has a password file (else anonymous),
// client certificates required when mtls.
func startTLSBroker(t *testing.T, p pki, s secret, mtls bool) int {
	t.Helper()
	_, ps, err := net.SplitHostPort(brokertest.FreeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(ps)
	auth := "allow_anonymous true\n"
	if s.PasswdFile != "" {
		auth = "allow_anonymous false\npassword_file " + s.PasswdFile + "\n"
	}
	if os.Geteuid() == 0 {
		// Started as root, Mosquitto drops to the "mosquitto" user before it
		// reads the password file, which then cannot enter the test's private
		// temporary directory. Stay root: the broker is this test's own.
		auth = "user root\n" + auth
	}
	conf := fmt.Sprintf("listener %d 127.0.0.1\ncafile %s\ncertfile %s\nkeyfile %s\nrequire_certificate %v\n%sset_tcp_nodelay true\nmax_queued_messages 1000000\npersistence false\n",
		port, p.CA, p.ServerCert, p.ServerKey, mtls, auth)
	dir := t.TempDir()
	m, err := mosquitto.StartWithConfig(dir, conf, port)
	if errors.Is(err, mosquitto.ErrNotInstalled) {
		brokertest.Unavailable(t, "mosquitto not installed (apt-get install -y mosquitto; .ci/run installs it)")
	}
	if err != nil {
		t.Fatalf("%v\nconfig:\n%s", err, conf)
	}
	t.Cleanup(m.Stop)
	return port
}

// refusal is a process that must be refused by the broker: it must exit 1
// within the connect timeout with an error that says what is wrong, and must
// not print the password it tried.
type refusal struct {
	name string
	p    *proc
	rf   string   // its REPORT_FILE ("" for the worker)
	want []string // the error names one of these (lower case)
	at   time.Time
}

// startRefusal starts bin with env against brokerURL; nil when it needs
// password authentication and mosquitto_passwd is absent.
func startRefusal(t *testing.T, name, bin, brokerURL string, want []string, env ...string) *refusal {
	t.Helper()
	r := &refusal{name: name, want: want, at: time.Now()}
	if bin == "worker-v2" {
		r.p = start(t, bin, append([]string{"MQTT_BROKER=" + brokerURL, "HTTP_ADDR=", "CONNECTIONS=2"}, env...)...)
	} else {
		r.rf = filepath.Join(t.TempDir(), name+".json")
		r.p = start(t, bin, loadgenEnv(brokerURL, r.rf, append([]string{"METRICS_ADDR=", "DURATION=1s"}, env...)...)...)
	}
	return r
}

// check waits for the refused process and asserts how it failed.
func (r *refusal) check(t *testing.T, brokerURL string, secrets ...string) {
	t.Helper()
	code := r.p.wait(t, 25*time.Second)
	out := r.p.out.String() + r.p.errOut.String()
	t.Logf("exit %d after %v: %s", code, time.Since(r.at).Round(time.Millisecond), strings.TrimSpace(r.p.errOut.String()))
	if code != 1 {
		t.Errorf("exit %d, want 1 (runtime error)", code)
	}
	if r.rf != "" {
		if _, err := os.Stat(r.rf); err == nil {
			t.Errorf("a report was written for a run that never connected")
		}
	}
	for _, sec := range secrets {
		if sec != "" && strings.Contains(out, sec) {
			t.Errorf("SECRET LEAK: a password appears in the output of a refused run")
		}
	}
	// A permanent refusal is reported as such, not after the connect timeout
	// (whose message counts the connections up); no clock is read for this.
	if strings.Contains(r.p.errOut.String(), "connections up after") {
		t.Errorf("a permanent refusal waited for the connect timeout instead of reporting the refusal")
	}
	// The broker URL itself says "tls": look for the reason elsewhere.
	msg := strings.ToLower(strings.ReplaceAll(r.p.errOut.String(), brokerURL, "BROKER"))
	for _, w := range r.want {
		if strings.Contains(msg, w) {
			return
		}
	}
	t.Errorf("the refusal does not say why: want one of %q in:\n%s", r.want, r.p.errOut.String())
}

var (
	wantAuthError = []string{"not authorized", "bad user name or password", "authenticat", "authoriz"}
	wantCertError = []string{"certificate", "x509"}
)

// TestSecurityTLSPassword: TLS (server certificate from a throwaway CA,
// SAN 127.0.0.1 and localhost) plus a password. The worker reads the password
// from MQTT_PASSWORD_FILE, the loadgen from MQTT_PASSWORD; every request is
// answered, and the password appears in no output, report or endpoint.
// Meanwhile a wrong password (loadgen and worker), a missing CA and a wrong
// server name are each refused with a clear error, within the connect
// timeout.
func TestSecurityTLSPassword(t *testing.T) {
	p := newPKI(t)
	s := newSecret(t)
	port := startTLSBroker(t, p, s, false)
	creds := func(file bool) []string {
		if s.PasswdFile == "" {
			return nil
		}
		if file {
			return []string{"MQTT_USERNAME=" + s.User, "MQTT_PASSWORD_FILE=" + s.File}
		}
		return []string{"MQTT_USERNAME=" + s.User, "MQTT_PASSWORD=" + s.Password}
	}
	if s.PasswdFile == "" {
		t.Log("mosquitto_passwd not installed: TLS without password authentication; the password subtests are skipped")
	}

	// The refusals take the whole connect timeout (10 s): run them alongside.
	tlsURL := fmt.Sprintf("tls://127.0.0.1:%d", port)
	wrongPW := "wrong-" + s.Password
	refused := []*refusal{
		startRefusal(t, "no CA", "loadgen-v2", tlsURL, wantCertError, creds(false)...),
		startRefusal(t, "wrong server name", "loadgen-v2", tlsURL, wantCertError,
			append(creds(false), "TLS_CA_FILE="+p.CA, "TLS_SERVER_NAME=broker.example")...),
	}
	if s.PasswdFile != "" {
		refused = append(refused,
			startRefusal(t, "wrong password", "loadgen-v2", tlsURL, wantAuthError,
				"MQTT_USERNAME="+s.User, "MQTT_PASSWORD="+wrongPW, "TLS_CA_FILE="+p.CA),
			startRefusal(t, "worker wrong password", "worker-v2", tlsURL, wantAuthError,
				"MQTT_USERNAME="+s.User, "MQTT_PASSWORD="+wrongPW, "TLS_CA_FILE="+p.CA))
	}

	t.Run("tls+password", func(t *testing.T) {
		w, waddr := startWorker(t, fmt.Sprintf("mqtts://localhost:%d", port),
			append(creds(true), "TLS_CA_FILE="+p.CA, "LOG_LEVEL=debug")...)
		rf := filepath.Join(t.TempDir(), "report.json")
		maddr := brokertest.FreeAddr(t)
		lg := start(t, "loadgen-v2", loadgenEnv(fmt.Sprintf("ssl://127.0.0.1:%d", port), rf,
			append(creds(false), "TLS_CA_FILE="+p.CA, "TLS_SERVER_NAME=localhost", "LOG_LEVEL=debug",
				"VIRTUAL_CLIENTS=500", "INTERVAL_MS=1000", "DURATION=2s", "REQUEST_TIMEOUT=2s", "METRICS_ADDR="+maddr)...)...)
		brokertest.WaitOK(t, "http://"+maddr+"/health")
		waitLoadgen(t, lg, maddr, "responses flowing", func(v lgVars) bool { return v.ResponsesMatched > 0 })
		endpoints := map[string]string{}
		for _, path := range []string{"/debug/vars", "/metrics", "/health"} {
			_, endpoints["loadgen "+path], _ = brokertest.Get("http://" + maddr + path)
		}
		if code := lg.wait(t, 30*time.Second); code != 0 {
			t.Fatalf("loadgen exit %d\n%s\n%s", code, lg.out.String(), lg.errOut.String())
		}
		r := readReport(t, rf)
		logReport(t, "TLS + password", r)
		checkAllAnswered(t, r, 500*2/1.0)
		for _, path := range []string{"/stats", "/metrics", "/health", "/ready", "/"} {
			_, endpoints["worker "+path], _ = brokertest.Get("http://" + waddr + path)
		}
		if code := w.stop(t); code != 0 {
			t.Errorf("worker exit %d: %s", code, w.errOut.String())
		}
		reportJSON, _ := os.ReadFile(rf)
		outputs := map[string]string{
			"loadgen stdout": lg.out.String(), "loadgen stderr": lg.errOut.String(), "report JSON": string(reportJSON),
			"worker stdout": w.out.String(), "worker stderr": w.errOut.String(),
		}
		for k, v := range endpoints {
			if v == "" {
				t.Errorf("%s: empty or unreachable", k)
			}
			outputs[k] = v
		}
		if s.PasswdFile == "" {
			return
		}
		for where, text := range outputs {
			if i := strings.Index(text, s.Password); i >= 0 {
				t.Errorf("SECRET LEAK: the password appears in %s: …%s…", where, text[max(i-120, 0):min(i+len(s.Password)+40, len(text))])
			}
		}
		t.Logf("password checked absent from: loadgen stdout/stderr, report JSON, worker stdout/stderr, loadgen /debug/vars /metrics /health, worker /stats /metrics /health /ready /")
	})

	t.Run("refused", func(t *testing.T) {
		for _, r := range refused {
			t.Run(r.name, func(t *testing.T) { r.check(t, tlsURL, s.Password, wrongPW) })
		}
	})
}

// TestSecurityMTLS: the broker requires a client certificate (and the
// password). With TLS_CERT_FILE/TLS_KEY_FILE every request is answered;
// without them the loadgen is refused.
func TestSecurityMTLS(t *testing.T) {
	p := newPKI(t)
	s := newSecret(t)
	port := startTLSBroker(t, p, s, true)
	var creds []string
	if s.PasswdFile != "" {
		creds = []string{"MQTT_USERNAME=" + s.User, "MQTT_PASSWORD_FILE=" + s.File}
	}
	url := fmt.Sprintf("tls://localhost:%d", port)
	certs := []string{"TLS_CA_FILE=" + p.CA, "TLS_CERT_FILE=" + p.ClientCert, "TLS_KEY_FILE=" + p.ClientKey}
	noCert := startRefusal(t, "no client certificate", "loadgen-v2", url, append(wantCertError, "handshake"), append(creds, "TLS_CA_FILE="+p.CA)...)

	t.Run("client certificate", func(t *testing.T) {
		w, _ := startWorker(t, url, append(creds, certs...)...)
		rf := filepath.Join(t.TempDir(), "report.json")
		lg := start(t, "loadgen-v2", loadgenEnv(url, rf, append(append(creds, certs...),
			"VIRTUAL_CLIENTS=500", "INTERVAL_MS=1000", "DURATION=2s", "REQUEST_TIMEOUT=2s")...)...)
		if code := lg.wait(t, 30*time.Second); code != 0 {
			t.Fatalf("loadgen exit %d\n%s\n%s", code, lg.out.String(), lg.errOut.String())
		}
		r := readReport(t, rf)
		logReport(t, "mTLS", r)
		checkAllAnswered(t, r, 500*2/1.0)
		if code := w.stop(t); code != 0 {
			t.Errorf("worker exit %d: %s", code, w.errOut.String())
		}
		for where, text := range map[string]string{"loadgen": lg.out.String() + lg.errOut.String(), "worker": w.out.String() + w.errOut.String()} {
			if s.PasswdFile != "" && strings.Contains(text, s.Password) {
				t.Errorf("SECRET LEAK: the password appears in the %s output", where)
			}
		}
	})
	t.Run(noCert.name, func(t *testing.T) { noCert.check(t, url, s.Password) })
}
