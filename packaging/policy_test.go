package packaging

import (
	"encoding/xml"
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// The Group Policy template's parts, as Windows' Group Policy editor reads
// them.
type admx struct {
	Categories []struct {
		Name        string `xml:"name,attr"`
		DisplayName string `xml:"displayName,attr"`
	} `xml:"categories>category"`
	Policies []admxPolicy `xml:"policies>policy"`
}

type admxPolicy struct {
	Name         string `xml:"name,attr"`
	Class        string `xml:"class,attr"`
	DisplayName  string `xml:"displayName,attr"`
	ExplainText  string `xml:"explainText,attr"`
	Presentation string `xml:"presentation,attr"`
	Key          string `xml:"key,attr"`
	ValueName    string `xml:"valueName,attr"`
	Parent       struct {
		Ref string `xml:"ref,attr"`
	} `xml:"parentCategory"`
	Texts []struct {
		ID        string `xml:"id,attr"`
		ValueName string `xml:"valueName,attr"`
	} `xml:"elements>text"`
	Enabled *struct {
		String string `xml:"string"`
	} `xml:"enabledValue"`
}

type adml struct {
	Strings []struct {
		ID   string `xml:"id,attr"`
		Text string `xml:",chardata"`
	} `xml:"resources>stringTable>string"`
	Presentations []struct {
		ID       string `xml:"id,attr"`
		TextBoxs []struct {
			RefID string `xml:"refId,attr"`
		} `xml:"textBox"`
	} `xml:"resources>presentationTable>presentation"`
}

func readPolicy(t *testing.T) (admx, adml) {
	t.Helper()
	var x admx
	var l adml
	for path, v := range map[string]any{filepath.Join("windows", "policy", "porthole.admx"): &x, filepath.Join("windows", "policy", "en-US", "porthole.adml"): &l} {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := xml.Unmarshal(b, v); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
	return x, l
}

// policyValue is where a policy's value lives in the registry.
func policyValue(t *testing.T, name string) (key, value string) {
	t.Helper()
	x, _ := readPolicy(t)
	for _, p := range x.Policies {
		if p.Name == name {
			if len(p.Texts) > 0 {
				return p.Key, p.Texts[0].ValueName
			}
			return p.Key, p.ValueName
		}
	}
	t.Fatalf("no policy %s in porthole.admx", name)
	return "", ""
}

// TestPolicyTemplate: every string and presentation the ADMX names is in
// the ADML, the values land where Porthole reads them, and autostart
// names the installed tray app.
func TestPolicyTemplate(t *testing.T) {
	x, l := readPolicy(t)
	strs := map[string]bool{}
	for _, s := range l.Strings {
		if s.Text == "" {
			t.Fatalf("string %s is empty", s.ID)
		}
		strs[s.ID] = true
	}
	pres := map[string][]string{}
	for _, p := range l.Presentations {
		for _, tb := range p.TextBoxs {
			pres[p.ID] = append(pres[p.ID], tb.RefID)
		}
	}
	ref := regexp.MustCompile(`^\$\((string|presentation)\.([A-Za-z0-9_]+)\)$`)
	check := func(s string) {
		m := ref.FindStringSubmatch(s)
		if m == nil {
			t.Fatalf("%q is not a $(string.X) reference", s)
		}
		if m[1] == "string" && !strs[m[2]] || m[1] == "presentation" && pres[m[2]] == nil {
			t.Fatalf("%s is not defined in the ADML", s)
		}
	}
	for _, c := range x.Categories {
		check(c.DisplayName)
	}
	if len(x.Policies) != 2 {
		t.Fatalf("%d policies, want GatewayURL and Autostart", len(x.Policies))
	}
	for _, p := range x.Policies {
		check(p.DisplayName)
		check(p.ExplainText)
		if p.Parent.Ref != "Porthole" || p.Class != "Machine" {
			t.Fatalf("policy %s: category %q class %q", p.Name, p.Parent.Ref, p.Class)
		}
		if p.Presentation != "" {
			check(p.Presentation)
			m := ref.FindStringSubmatch(p.Presentation)
			for i, refID := range pres[m[2]] {
				if i >= len(p.Texts) || p.Texts[i].ID != refID {
					t.Fatalf("policy %s: presentation box %s has no element", p.Name, refID)
				}
			}
		}
	}
	if k, v := policyValue(t, "GatewayURL"); k != `Software\Policies\Porthole` || v != "GatewayURL" {
		t.Fatalf("GatewayURL lands in %s\\%s, not where the app reads it", k, v)
	}
	for _, p := range x.Policies {
		if p.Name == "Autostart" && (p.Key != `Software\Microsoft\Windows\CurrentVersion\Run` || p.ValueName != "Porthole" ||
			p.Enabled == nil || p.Enabled.String != `"C:\Program Files\Porthole\porthole-tray.exe"`) {
			t.Fatalf("Autostart policy %+v does not start the installed tray app", p)
		}
	}
}
