package packaging

import (
	"bufio"
	"debug/pe"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// dist is where scripts/package wrote the packages. Outside scripts/test
// (which builds them first and sets PORTHOLE_REQUIRE_DIST) a missing dist/
// skips these tests, saying how to run them.
func dist(t *testing.T) string {
	t.Helper()
	d := os.Getenv("PORTHOLE_DIST")
	if d == "" {
		d = filepath.Join("..", "dist")
	}
	if _, err := os.Stat(filepath.Join(d, "build")); err != nil {
		if os.Getenv("PORTHOLE_REQUIRE_DIST") != "" {
			t.Fatalf("no packages in %s although scripts/package should have built them", d)
		}
		t.Skip("no dist/: run scripts/package (make package) first")
	}
	return d
}

func one(t *testing.T, pattern string) string {
	t.Helper()
	m, _ := filepath.Glob(pattern)
	if len(m) != 1 {
		t.Fatalf("want one file matching %s, found %v", pattern, m)
	}
	return m[0]
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

func contains(t *testing.T, what, text string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(text, w) {
			t.Fatalf("%s lacks %q:\n%s", what, w, text)
		}
	}
}

func TestClientMSI(t *testing.T) {
	msi := one(t, filepath.Join(dist(t), "porthole-[0-9]*-x64.msi"))
	if strings.Contains(msi, "gateway") {
		t.Fatalf("picked the server MSI: %s", msi)
	}
	contains(t, "tables", run(t, "msiinfo", "tables", msi), "File", "Shortcut", "Registry", "Upgrade", "Feature")
	contains(t, "File table", run(t, "msiinfo", "export", msi, "File"), "porthole-tray.exe", "porthole.exe",
		"porthole.dll", "porthole.h", "porthole_control.py")
	contains(t, "Shortcut table", run(t, "msiinfo", "export", msi, "Shortcut"), "Porthole", "[INSTALLDIR]porthole-tray.exe")
	contains(t, "Registry table", run(t, "msiinfo", "export", msi, "Registry"),
		`Software\Porthole`, "GatewayURL", "[GATEWAY_URL]", `Software\Microsoft\Windows\CurrentVersion\Run`)
	contains(t, "Property table", run(t, "msiinfo", "export", msi, "Property"), "{1A2B3C4D-5E6F-4A7B-8C9D-0E1F2A3B4C5D}", "ALLUSERS")
	contains(t, "Upgrade table", run(t, "msiinfo", "export", msi, "Upgrade"), "{1A2B3C4D-5E6F-4A7B-8C9D-0E1F2A3B4C5D}")
	contains(t, "Feature table", run(t, "msiinfo", "export", msi, "Feature"), "Client", "Autostart\t\tStart Porthole at login")
	verifySigned(t, msi)
}

func TestServerMSI(t *testing.T) {
	msi := one(t, filepath.Join(dist(t), "porthole-gateway-*-x64.msi"))
	contains(t, "File table", run(t, "msiinfo", "export", msi, "File"), "porthole-gateway.exe", "porthole-launcher.exe")
	svc := run(t, "msiinfo", "export", msi, "ServiceInstall")
	// Type 16: own process; start 2: automatic; the config under ProgramData.
	contains(t, "ServiceInstall table", svc, "PortholeGateway\tPorthole Gateway\t16\t2", "PortholeLauncher\tPorthole Launcher\t16\t2",
		`serve --create-config --config "[CommonAppDataFolder]Porthole\gateway.json"`)
	contains(t, "ServiceControl table", run(t, "msiinfo", "export", msi, "ServiceControl"), "PortholeGateway", "PortholeLauncher")
	contains(t, "Upgrade table", run(t, "msiinfo", "export", msi, "Upgrade"), "{6F1D3C52-8E0B-4C5A-9F43-2B7E5A0C9D11}")
	verifySigned(t, msi)
}

// verifySigned checks osslsigncode sees a signature (with the throwaway
// test certificate the chain is not trusted, which is expected).
func verifySigned(t *testing.T, f string) {
	t.Helper()
	out, _ := exec.Command("osslsigncode", "verify", "-in", f).CombinedOutput()
	if !strings.Contains(string(out), "Signer's certificate") && !strings.Contains(string(out), "Number of signers: 1") {
		t.Fatalf("%s carries no signature:\n%s", f, out)
	}
}

func TestWindowsBinaries(t *testing.T) {
	d := filepath.Join(dist(t), "build", "windows")
	for name, gui := range map[string]bool{"porthole.exe": false, "porthole-gateway.exe": false, "porthole-launcher.exe": false, "porthole-tray.exe": true} {
		f, err := pe.Open(filepath.Join(d, name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		oh, ok := f.OptionalHeader.(*pe.OptionalHeader64)
		if !ok || f.Machine != pe.IMAGE_FILE_MACHINE_AMD64 {
			t.Fatalf("%s is not a 64-bit x86 executable", name)
		}
		want := uint16(pe.IMAGE_SUBSYSTEM_WINDOWS_CUI)
		if gui {
			want = pe.IMAGE_SUBSYSTEM_WINDOWS_GUI // no console window for the tray
		}
		if oh.Subsystem != want {
			t.Fatalf("%s subsystem %d, want %d", name, oh.Subsystem, want)
		}
		if gui && f.Section(".rsrc") == nil {
			t.Fatalf("%s has no resources (icon, version)", name)
		}
		f.Close()
		verifySigned(t, filepath.Join(d, name))
	}
}

func TestDebs(t *testing.T) {
	d := dist(t)
	client := one(t, filepath.Join(d, "porthole_*_amd64.deb"))
	info := run(t, "dpkg-deb", "-I", client)
	contains(t, client, info, "Package: porthole", "Architecture: amd64")
	contains(t, client, run(t, "dpkg-deb", "-c", client), "./usr/bin/porthole", "./usr/bin/porthole-tray",
		"./usr/share/applications/porthole.desktop", "./usr/share/icons/hicolor/256x256/apps/porthole.png",
		"./usr/lib/python3/dist-packages/porthole_control.py", "./usr/share/porthole/sdk/c/porthole.h", "./usr/share/doc/porthole/sdk.md")

	server := one(t, filepath.Join(d, "porthole-gateway_*_amd64.deb"))
	contains(t, server, run(t, "dpkg-deb", "-I", server), "Package: porthole-gateway", "postinst", "prerm", "postrm", "conffiles")
	contains(t, server, run(t, "dpkg-deb", "-c", server), "./usr/bin/porthole-gateway", "./usr/bin/porthole-launcher",
		"./lib/systemd/system/porthole-gateway.service", "./lib/systemd/system/porthole-launcher.service",
		"./etc/porthole/gateway.json", "./etc/porthole/launcher.json", "./var/lib/porthole")
	ctl := t.TempDir()
	run(t, "dpkg-deb", "-e", server, ctl)
	conffiles, _ := os.ReadFile(filepath.Join(ctl, "conffiles"))
	contains(t, "conffiles", string(conffiles), "/etc/porthole/gateway.json", "/etc/porthole/launcher.json")
	postinst, _ := os.ReadFile(filepath.Join(ctl, "postinst"))
	contains(t, "postinst", string(postinst), "adduser --system", "systemctl enable", "/run/systemd/system")
	for _, line := range strings.Split(string(postinst), "\n") {
		code, _, _ := strings.Cut(line, "#")
		if strings.Contains(code, "systemctl start") || strings.Contains(code, "enable --now") {
			t.Fatalf("postinst starts a service: %s", line)
		}
	}

	// The extracted gateway runs and answers /healthz.
	root := t.TempDir()
	run(t, "dpkg-deb", "-x", server, root)
	bin := filepath.Join(root, "usr", "bin", "porthole-gateway")
	contains(t, "--version", run(t, bin, "--version"), "porthole-gateway 0.1.0", "commit ")
	cmd := exec.Command(bin, "serve", "--data", t.TempDir(), "--listen", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "PORTHOLE_ADMIN_PASSWORD=package-test")
	out, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	addr := ""
	re := regexp.MustCompile(`listening"? addr=(\S+)`)
	sc := bufio.NewScanner(out)
	deadline := time.AfterFunc(30*time.Second, func() { cmd.Process.Kill() })
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			addr = m[1]
			break
		}
	}
	deadline.Stop()
	go io.Copy(io.Discard, out)
	if addr == "" {
		t.Fatal("the packaged gateway did not start")
	}
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/healthz: %d", resp.StatusCode)
	}

	// systemd accepts the units (with ExecStart pointed at the extracted binaries).
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Log("systemd-analyze is not installed here; units not verified")
		return
	}
	for _, unit := range []string{"porthole-gateway.service", "porthole-launcher.service"} {
		b, _ := os.ReadFile(filepath.Join(root, "lib", "systemd", "system", unit))
		fixed := strings.ReplaceAll(string(b), "/usr/bin/", filepath.Join(root, "usr", "bin")+"/")
		p := filepath.Join(t.TempDir(), unit)
		os.WriteFile(p, []byte(fixed), 0o644)
		if b, err := exec.Command("systemd-analyze", "verify", "--man=no", p).CombinedOutput(); err != nil || len(strings.TrimSpace(string(b))) > 0 {
			t.Fatalf("systemd-analyze verify %s: %v\n%s", unit, err, b)
		}
	}
}
