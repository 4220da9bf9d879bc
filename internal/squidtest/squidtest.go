// Package squidtest runs Debian's squid as an authenticating HTTP proxy on
// 127.0.0.1 for tests: Basic (basic_ncsa_auth with a password file), NTLM
// (Samba's ntlm_auth helper against the test domain controller's winbindd,
// so passwords are checked by the domain) and Negotiate
// (negotiate_kerberos_auth with a keytab of the test domain). Only CONNECT
// from signed-in users is allowed.
package squidtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Options say what the proxy asks for.
type Options struct {
	// Basic users and their passwords.
	Basic map[string]string
	// SMBConf, the test domain controller's smb.conf, turns on NTLM.
	SMBConf string
	// Keytab and Principal turn on Negotiate (Kerberos); KRB5Config is the
	// realm's krb5.conf.
	Keytab, Principal, KRB5Config string
	// Hosts maps names to addresses for squid (its hosts_file), so tests
	// can use gateway names that clients do not exempt from proxies.
	Hosts map[string]string
}

// Proxy is a running squid.
type Proxy struct {
	Port int
	dir  string
}

// Start runs squid until the test ends.
func Start(t testing.TB, o Options) *Proxy {
	t.Helper()
	if _, err := exec.LookPath("squid"); err != nil {
		t.Fatal("squid is missing (Debian's squid): scripts/test installs it")
	}
	dir, err := os.MkdirTemp("", "porthole-squid-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()

	var cfg strings.Builder
	fmt.Fprintf(&cfg, "http_port 127.0.0.1:%d\n", port)
	for _, l := range []string{
		"pid_filename " + filepath.Join(dir, "squid.pid"),
		"access_log stdio:" + filepath.Join(dir, "access.log"),
		"cache_log " + filepath.Join(dir, "cache.log"),
		"cache_store_log none",
		"coredump_dir " + dir,
		"cache deny all",
		"shutdown_lifetime 0 seconds",
		"dns_nameservers 127.0.0.1",
		"hosts_file " + filepath.Join(dir, "hosts"),
	} {
		cfg.WriteString(l + "\n")
	}
	var hosts strings.Builder
	hosts.WriteString("127.0.0.1 localhost\n")
	for name, addr := range o.Hosts {
		fmt.Fprintf(&hosts, "%s %s\n", addr, name)
	}
	os.WriteFile(filepath.Join(dir, "hosts"), []byte(hosts.String()), 0o644)
	if o.Principal != "" {
		fmt.Fprintf(&cfg, "auth_param negotiate program /usr/lib/squid/negotiate_kerberos_auth -k %s -s %s\nauth_param negotiate children 2\n", o.Keytab, o.Principal)
	}
	if o.SMBConf != "" {
		fmt.Fprintf(&cfg, "auth_param ntlm program /usr/bin/ntlm_auth --helper-protocol=squid-2.5-ntlmssp --configfile=%s\nauth_param ntlm children 2\n", o.SMBConf)
	}
	if len(o.Basic) > 0 {
		var pw strings.Builder
		for u, p := range o.Basic {
			out, err := exec.Command("openssl", "passwd", "-1", p).Output()
			if err != nil {
				t.Fatalf("openssl passwd: %v", err)
			}
			fmt.Fprintf(&pw, "%s:%s\n", u, strings.TrimSpace(string(out)))
		}
		os.WriteFile(filepath.Join(dir, "passwd"), []byte(pw.String()), 0o644)
		fmt.Fprintf(&cfg, "auth_param basic program /usr/lib/squid/basic_ncsa_auth %s\nauth_param basic realm porthole-test\nauth_param basic children 2\n", filepath.Join(dir, "passwd"))
	}
	cfg.WriteString("acl signedin proxy_auth REQUIRED\nhttp_access allow CONNECT signedin\nhttp_access deny all\n")
	if os.Geteuid() == 0 {
		// squid drops root for the proxy user, who must write its logs.
		cfg.WriteString("cache_effective_user proxy\n")
		if u, err := user.Lookup("proxy"); err == nil {
			uid, _ := strconv.Atoi(u.Uid)
			gid, _ := strconv.Atoi(u.Gid)
			os.Chown(dir, uid, gid)
			if o.Keytab != "" {
				kt := filepath.Join(dir, "http.keytab")
				b, _ := os.ReadFile(o.Keytab)
				os.WriteFile(kt, b, 0o600)
				os.Chown(kt, uid, gid)
				cfgText := strings.ReplaceAll(cfg.String(), " -k "+o.Keytab, " -k "+kt)
				cfg.Reset()
				cfg.WriteString(cfgText)
			}
		}
	}
	conf := filepath.Join(dir, "squid.conf")
	os.WriteFile(conf, []byte(cfg.String()), 0o644)
	os.Chmod(dir, 0o755)

	cmd := exec.Command("squid", "-N", "-f", conf)
	cmd.Env = os.Environ()
	if o.KRB5Config != "" {
		cmd.Env = append(cmd.Env, "KRB5_CONFIG="+o.KRB5Config)
	}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("squid: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			break
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(filepath.Join(dir, "cache.log"))
			t.Fatalf("squid exited: %s\n%s", out.String(), log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("squid did not listen on %d", port)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return &Proxy{Port: port, dir: dir}
}

// AccessLog is squid's access log so far.
func (p *Proxy) AccessLog() string {
	b, _ := os.ReadFile(filepath.Join(p.dir, "access.log"))
	return string(b)
}

// CacheLog is squid's own log (helpers' complaints land here).
func (p *Proxy) CacheLog() string {
	b, _ := os.ReadFile(filepath.Join(p.dir, "cache.log"))
	return string(b)
}
