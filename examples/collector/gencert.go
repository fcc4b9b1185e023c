package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/recordmux/recordmux/identity"
)

// gencert writes two development identities (package identity:
// self-signed ECDSA certificates, keys unencrypted with mode 0600) for
// trying the collector out:
//
//	collector.pem, collector-key.pem  the collector's, for hosts
//	agent.pem, agent-key.pem          an agent's client identity
//
// and prints their fingerprints and the commands that use them. It
// refuses to overwrite existing files.
func gencert(dir string, hosts []string, stdout io.Writer) error {
	names := []string{"collector.pem", "collector-key.pem", "agent.pem", "agent-key.pem"}
	for _, n := range names {
		if _, err := os.Lstat(filepath.Join(dir, n)); err == nil {
			return fmt.Errorf("%s exists; remove it or pick another directory", filepath.Join(dir, n))
		} else if !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	collector, err := identity.Generate(hosts...)
	if err != nil {
		return err
	}
	agent, err := identity.Generate("edge-agent")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	p := func(name string) string { return filepath.Join(dir, name) }
	if err := identity.Save(collector, p(names[0]), p(names[1])); err != nil {
		return err
	}
	if err := identity.Save(agent, p(names[2]), p(names[3])); err != nil {
		return err
	}
	fmt.Fprintf(stdout, `wrote %[1]s/{collector.pem,collector-key.pem,agent.pem,agent-key.pem}:
self-signed development identities, valid for %[2]d years, the collector's for %[3]q
collector key fingerprint  %[4]v
agent key fingerprint      %[5]v

collector:           collector -cert %[1]s/collector.pem -key %[1]s/collector-key.pem -sink out.jsonl -state collector.state
  with mutual TLS:   add -client-ca %[1]s/agent.pem
edge-agent:          edge-agent -pin %[4]v -generate 1000 -state agent.state
  (or -pin %[1]s/collector.pem)
  with mutual TLS:   add -cert %[1]s/agent.pem -key %[1]s/agent-key.pem
`, dir, int(identity.Validity.Hours()/24/365), hosts, identity.FingerprintOf(collector.Leaf), identity.FingerprintOf(agent.Leaf))
	return nil
}
