package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/recordmux/recordmux/internal/tlsutil"
)

// gencert writes a certificate set for trying the collector out:
//
//	collector.pem, collector-key.pem  a self-signed server certificate for hosts
//	client-ca.pem                     a CA for client certificates (its key is not kept)
//	agent.pem, agent-key.pem          a client certificate that CA signed
//
// It refuses to overwrite existing files.
func gencert(dir string, hosts []string, stdout io.Writer) error {
	server, err := tlsutil.SelfSigned(hosts...)
	if err != nil {
		return err
	}
	ca, err := tlsutil.NewCA("recordmux example client CA")
	if err != nil {
		return err
	}
	agent, err := ca.IssueClient("edge-agent")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	files := []struct {
		name  string
		write func(io.Writer) error
		perm  os.FileMode
	}{
		{"collector.pem", certPEM(server.Certificate[0]), 0o644},
		{"collector-key.pem", keyPEM(server), 0o600},
		{"client-ca.pem", certPEM(ca.Certificate().Raw), 0o644},
		{"agent.pem", certPEM(agent.Certificate[0]), 0o644},
		{"agent-key.pem", keyPEM(agent), 0o600},
	}
	for _, f := range files {
		if err := writeNew(filepath.Join(dir, f.name), f.perm, f.write); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, `wrote %[1]s/{collector.pem,collector-key.pem,client-ca.pem,agent.pem,agent-key.pem}
(valid for %[2]v, for %[3]q)

collector:           collector -cert %[1]s/collector.pem -key %[1]s/collector-key.pem -sink out.jsonl -state collector.state
  with mutual TLS:   add -client-ca %[1]s/client-ca.pem
edge-agent:          edge-agent -pin %[1]s/collector.pem -generate 1000 -state agent.state
  with mutual TLS:   add -cert %[1]s/agent.pem -key %[1]s/agent-key.pem
`, dir, tlsutil.Validity, hosts)
	return nil
}

func certPEM(der []byte) func(io.Writer) error {
	return func(w io.Writer) error {
		return pem.Encode(w, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	}
}

func keyPEM(cert tls.Certificate) func(io.Writer) error {
	return func(w io.Writer) error {
		der, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
		if err != nil {
			return err
		}
		return pem.Encode(w, &pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
}

// writeNew creates path, which must not exist, and writes it.
func writeNew(path string, perm os.FileMode, write func(io.Writer) error) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%s exists; remove it or pick another directory", path)
		}
		return err
	}
	err = write(f)
	return errors.Join(err, f.Close())
}
