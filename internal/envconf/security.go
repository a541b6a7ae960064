package envconf

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
)

// Security is the broker authentication and TLS configuration shared by both
// binaries and the helper commands, read from the environment; Apply turns
// it into mqttconn.Options fields (mqttconn itself knows no variable names). Secrets are never printed: the
// password fields are excluded from JSON and String.
type Security struct {
	Username     string `envconfig:"MQTT_USERNAME" desc:"broker username (optional)" json:"username,omitempty"`
	Password     string `envconfig:"MQTT_PASSWORD" desc:"broker password (optional; prefer MQTT_PASSWORD_FILE)" json:"-"`
	PasswordFile string `envconfig:"MQTT_PASSWORD_FILE" desc:"file holding the broker password (trailing newline ignored)" json:"password_file,omitempty"`
	CAFile       string `envconfig:"TLS_CA_FILE" desc:"PEM CA bundle to verify the broker (TLS URLs: ssl://, tls://, mqtts://)" json:"tls_ca_file,omitempty"`
	CertFile     string `envconfig:"TLS_CERT_FILE" desc:"PEM client certificate (optional, with TLS_KEY_FILE)" json:"tls_cert_file,omitempty"`
	KeyFile      string `envconfig:"TLS_KEY_FILE" desc:"PEM client key (optional, with TLS_CERT_FILE)" json:"-"`
	ServerName   string `envconfig:"TLS_SERVER_NAME" desc:"expected server name in the broker certificate (default: the URL host)" json:"tls_server_name,omitempty"`
	Insecure     bool   `envconfig:"TLS_INSECURE" default:"false" desc:"skip broker certificate verification (testing only)" json:"tls_insecure,omitempty"`
}

// Validate checks the security settings against the broker URL variable
// brokerVar=broker.
func (s *Security) Validate(brokerVar, broker string) []error {
	var errs []error
	if s.Password != "" && s.PasswordFile != "" {
		errs = append(errs, fmt.Errorf("MQTT_PASSWORD and MQTT_PASSWORD_FILE are both set: set one"))
	}
	if s.PasswordFile != "" {
		if _, err := os.Stat(s.PasswordFile); err != nil {
			errs = append(errs, fmt.Errorf("MQTT_PASSWORD_FILE=%s cannot be read: %v", s.PasswordFile, err))
		}
	}
	if (s.CertFile == "") != (s.KeyFile == "") {
		errs = append(errs, fmt.Errorf("TLS_CERT_FILE and TLS_KEY_FILE must be set together"))
	}
	for _, f := range []struct{ name, path string }{{"TLS_CA_FILE", s.CAFile}, {"TLS_CERT_FILE", s.CertFile}, {"TLS_KEY_FILE", s.KeyFile}} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			errs = append(errs, fmt.Errorf("%s=%s cannot be read: %v", f.name, f.path, err))
		}
	}
	if err := mqttconn.ValidateBrokerURL(broker); err != nil {
		errs = append(errs, fmt.Errorf("%s=%s %v", brokerVar, broker, err))
	} else if (s.CAFile != "" || s.CertFile != "" || s.Insecure) && !mqttconn.IsTLS(broker) {
		errs = append(errs, fmt.Errorf("%s=%s is not a TLS URL (ssl://, tls://, mqtts://) but TLS settings are given", brokerVar, broker))
	}
	return errs
}

// Apply fills the authentication and TLS fields of o from s, reading the
// password and certificate files.
func (s *Security) Apply(o *mqttconn.Options) error {
	o.Username = s.Username
	o.Password = s.Password
	if s.PasswordFile != "" {
		b, err := os.ReadFile(s.PasswordFile)
		if err != nil {
			return fmt.Errorf("%w: MQTT_PASSWORD_FILE: %v", ErrInvalid, err)
		}
		o.Password = strings.TrimRight(string(b), "\r\n")
	}
	if !mqttconn.IsTLS(o.Broker) {
		return nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: s.ServerName, InsecureSkipVerify: s.Insecure} //nolint:gosec // only when TLS_INSECURE is asked for
	if s.CAFile != "" {
		pem, err := os.ReadFile(s.CAFile)
		if err != nil {
			return fmt.Errorf("%w: TLS_CA_FILE: %v", ErrInvalid, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("%w: TLS_CA_FILE=%s holds no PEM certificate", ErrInvalid, s.CAFile)
		}
		cfg.RootCAs = pool
	}
	if s.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(s.CertFile, s.KeyFile)
		if err != nil {
			return fmt.Errorf("%w: TLS_CERT_FILE/TLS_KEY_FILE: %v", ErrInvalid, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	o.TLS = cfg
	return nil
}
