// dashboard-lint checks mstperf's Grafana dashboards against the rules of Grafana's
// dashboard-linter (same rule names) plus the project's own (fixed uid, no __inputs), and
// decodes each one strictly into Grafana's dashboard model (grafana-foundation-sdk): an unknown
// field, a wrongly typed value or a missing one is a dashboard-schema-rule problem.
//
// Grafana's linter cannot be installed from the Go module proxy this project uses (no
// version of github.com/grafana/dashboard-linter is served there), so this tool applies its
// rules with Prometheus' own PromQL parser. Usage: dashboard-lint FILE.json...
// Prints one line per problem ("file: rule: message") and exits 1 when there is any.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	grafana "github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/prometheus/prometheus/promql/parser"
)

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// Panels and targets reference their data source either as an object or, in old dashboards,
// as a plain name; both decode here.
func (d *datasourceRef) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		d.UID = s
		return nil
	}
	type plain datasourceRef
	return json.Unmarshal(b, (*plain)(d))
}

type target struct {
	RefID      string         `json:"refId"`
	Expr       string         `json:"expr"`
	Datasource *datasourceRef `json:"datasource"`
}

type override struct {
	Properties []struct {
		ID    string      `json:"id"`
		Value interface{} `json:"value"`
	} `json:"properties"`
}

type panel struct {
	ID          int            `json:"id"`
	Type        string         `json:"type"`
	Title       string         `json:"title"`
	Description string         `json:"description"`
	Datasource  *datasourceRef `json:"datasource"`
	Targets     []target       `json:"targets"`
	Panels      []panel        `json:"panels"`
	FieldConfig struct {
		Defaults struct {
			Unit string `json:"unit"`
		} `json:"defaults"`
		Overrides []override `json:"overrides"`
	} `json:"fieldConfig"`
}

type variable struct {
	Name  string      `json:"name"`
	Label string      `json:"label"`
	Type  string      `json:"type"`
	Query interface{} `json:"query"`
}

type dashboard struct {
	UID        string          `json:"uid"`
	Title      string          `json:"title"`
	Inputs     json.RawMessage `json:"__inputs"`
	Requires   json.RawMessage `json:"__requires"`
	Panels     []panel         `json:"panels"`
	Templating struct {
		List []variable `json:"list"`
	} `json:"templating"`
}

// Grafana's unit ids (packages/grafana-data/src/valueFormats/categories.ts), as the
// dashboard-linter's panel-units-rule accepts them.
var validUnits = strings.Fields(`none string short percent percentunit humidity dB hex0x hex sci
locale pixel accMS2 accFS2 accG degree radian grad arcmin arcsec areaM2 areaF2 areaMI2 flops
mflops gflops tflops pflops eflops zflops yflops ppm conppb conngm3 conngNm3 conμgm3 conμgNm3
conmgm3 conmgNm3 congm3 congNm3 conmgdL conmmolL currencyUSD currencyGBP currencyEUR
currencyJPY currencyRUB currencyUAH currencyBRL currencyDKK currencyISK currencyNOK currencySEK
currencyCZK currencyCHF currencyPLN currencyBTC currencymBTC currencyμBTC currencyZAR
currencyINR currencyKRW currencyIDR currencyPHP currencyVND bytes decbytes bits decbits kbytes
deckbytes mbytes decmbytes gbytes decgbytes tbytes dectbytes pbytes decpbytes pps binBps Bps
binbps bps KiBs Kibits KBs Kbits MiBs Mibits MBs Mbits GiBs Gibits GBs Gbits TiBs Tibits TBs
Tbits PiBs Pibits PBs Pbits dateTimeAsIso dateTimeAsIsoNoDateIfToday dateTimeAsUS
dateTimeAsUSNoDateIfToday dateTimeAsLocal dateTimeAsLocalNoDateIfToday dateTimeAsSystem
dateTimeFromNow watt kwatt megwatt gwatt mwatt Wm2 voltamp kvoltamp voltampreact kvoltampreact
watth watthperkg kwatth kwattm amph kamph mamph joule ev amp kamp mamp volt kvolt mvolt dBm ohm
kohm Mohm farad µfarad nfarad pfarad ffarad henry mhenry µhenry lumens flowgpm flowcms flowcfs
flowcfm litreh flowlpm flowmlpm lux forceNm forcekNm forceN forcekN Hs KHs MHs GHs THs PHs EHs
massmg massg masslb masskg masst lengthmm lengthin lengthft lengthm lengthkm lengthmi
pressurembar pressurebar pressurekbar pressurepa pressurehpa pressurekpa pressurehg
pressurepsi radbq radci radgy radrad radsv radmsv radusv radrem radexpckg radr radsvh radmsvh
radusvh rotrpm rothz rotrads rotdegs celsius fahrenheit kelvin hertz ns µs ms s m h d
dtdurationms dtdurations dthms dtdhms timeticks clockms clocks cps ops reqps rps wps iops cpm
opm rpm wpm velocityms velocitykmh velocitymph velocityknot mlitre litre m3 Nm3 dm3 gallons
bool bool_yes_no bool_on_off`)

// Panel types whose values are numbers shown with a unit.
var unitPanelTypes = map[string]bool{"stat": true, "singlestat": true, "graph": true,
	"table": true, "timeseries": true, "gauge": true, "bargauge": true}

// Grafana's global variables get values no real query uses, so a range selector can be traced
// back to the variable it came from (the dashboard-linter does the same).
var globalVariables = map[string]string{
	"__rate_interval": "8869h",
	"__interval":      "4867h",
	"__interval_ms":   "4867",
	"__range":         "6h",
	"__range_s":       "21600",
	"__range_ms":      "21600000",
	"__dashboard":     "dashboard",
}

var variableRef = regexp.MustCompile(`\$\{([A-Za-z0-9_]+)(?::[^}]*)?\}|\[\[([A-Za-z0-9_]+)\]\]|\$([A-Za-z0-9_]+)`)
var uidPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,40}$`)

type linter struct {
	file     string
	problems []string
}

func (l *linter) report(rule, format string, args ...interface{}) {
	l.problems = append(l.problems, fmt.Sprintf("%s: %s: %s", l.file, rule, fmt.Sprintf(format, args...)))
}

// expand replaces every variable reference with a value that parses as PromQL.
func expand(expr string, d *dashboard) string {
	return variableRef.ReplaceAllStringFunc(expr, func(ref string) string {
		m := variableRef.FindStringSubmatch(ref)
		name := m[1] + m[2] + m[3]
		if v, ok := globalVariables[name]; ok {
			return v
		}
		for _, v := range d.Templating.List {
			if v.Name == name {
				return name // a label value or regex; any word parses
			}
		}
		return ref // unknown: left as is, so the PromQL rule reports it
	})
}

func isDatasourceVariable(ref *datasourceRef) bool {
	return ref != nil && (ref.UID == "$datasource" || ref.UID == "${datasource}")
}

func (l *linter) lintDashboard(d *dashboard) {
	if !uidPattern.MatchString(d.UID) {
		l.report("dashboard-uid-rule", "uid %q must be fixed: 1-40 characters of [A-Za-z0-9_-]", d.UID)
	}
	if strings.TrimSpace(d.Title) == "" {
		l.report("dashboard-title-rule", "dashboard has no title")
	}
	if len(d.Inputs) > 0 || len(d.Requires) > 0 {
		l.report("no-inputs-rule", "dashboard has __inputs/__requires: use the datasource variable, not an import-time input")
	}
	var ds []variable
	for _, v := range d.Templating.List {
		if v.Type == "datasource" {
			ds = append(ds, v)
		}
	}
	if len(ds) == 0 {
		l.report("template-datasource-rule", "dashboard %q does not have a templated data source", d.Title)
	}
	for _, v := range ds {
		if q, _ := v.Query.(string); q != "prometheus" {
			l.report("template-datasource-rule", "data source variable %q queries %v, want prometheus", v.Name, v.Query)
		}
		if v.Name != "datasource" && !(len(ds) > 1 && v.Name == "prometheus_datasource") {
			l.report("template-datasource-rule", "templated data source variable named %q, should be named 'datasource'", v.Name)
		}
		if v.Label != "Data source" && v.Label != "Prometheus data source" {
			l.report("template-datasource-rule", "templated data source variable labeled %q, should be labeled 'Data source'", v.Label)
		}
	}
	ids := map[int]string{}
	var walk func(ps []panel)
	walk = func(ps []panel) {
		for i := range ps {
			p := &ps[i]
			if prev, ok := ids[p.ID]; ok {
				l.report("panel-id-rule", "panels %q and %q share id %d", prev, p.Title, p.ID)
			}
			ids[p.ID] = p.Title
			if p.Type == "row" {
				walk(p.Panels)
				continue
			}
			l.lintPanel(d, p)
		}
	}
	walk(d.Panels)
}

func (l *linter) lintPanel(d *dashboard, p *panel) {
	if strings.TrimSpace(p.Title) == "" || strings.TrimSpace(p.Description) == "" {
		l.report("panel-title-description-rule", "panel %d %q must have a title and a description", p.ID, p.Title)
	}
	if p.Type == "text" {
		return
	}
	if !isDatasourceVariable(p.Datasource) {
		l.report("panel-datasource-rule", "panel %q does not use the templated data source ${datasource}", p.Title)
	}
	if len(p.Targets) == 0 {
		l.report("panel-no-targets-rule", "panel %q has no queries", p.Title)
	}
	if unitPanelTypes[p.Type] {
		unit := p.FieldConfig.Defaults.Unit
		for _, o := range p.FieldConfig.Overrides {
			for _, prop := range o.Properties {
				if s, ok := prop.Value.(string); ok && prop.ID == "unit" {
					unit = s
				}
			}
		}
		if !contains(validUnits, unit) {
			l.report("panel-units-rule", "panel %q has no or invalid units defined: %q", p.Title, unit)
		}
	}
	for _, t := range p.Targets {
		if t.Datasource != nil && !isDatasourceVariable(t.Datasource) {
			l.report("panel-datasource-rule", "panel %q query %s does not use ${datasource}", p.Title, t.RefID)
		}
		l.lintExpr(d, p, t)
	}
}

func (l *linter) lintExpr(d *dashboard, p *panel, t target) {
	if strings.TrimSpace(t.Expr) == "" {
		l.report("target-promql-rule", "panel %q query %s is empty", p.Title, t.RefID)
		return
	}
	expr, err := parser.NewParser(parser.Options{}).ParseExpr(expand(t.Expr, d))
	if err != nil {
		l.report("target-promql-rule", "panel %q: invalid PromQL %q: %v", p.Title, t.Expr, err)
		return
	}
	rateInterval, _ := time.ParseDuration(globalVariables["__rate_interval"])
	parser.Inspect(expr, func(node parser.Node, path []parser.Node) error {
		var parent *parser.Call
		if len(path) > 0 {
			parent, _ = path[len(path)-1].(*parser.Call)
		}
		switch n := node.(type) {
		case *parser.MatrixSelector:
			// rate() and irate() over anything but $__rate_interval miss samples or smooth
			// too much depending on the zoom; other range functions may use $__range etc.
			if parent != nil && (parent.Func.Name == "rate" || parent.Func.Name == "irate") &&
				time.Duration(n.Range) != rateInterval {
				l.report("target-rate-interval-rule", "panel %q: %q should use $__rate_interval", p.Title, t.Expr)
			}
		case *parser.VectorSelector:
			// A counter's raw value depends on when its process started; only its rate or
			// increase means something (and survives restarts).
			if !strings.HasSuffix(n.Name, "_total") {
				return nil
			}
			ok := false
			if len(path) >= 2 {
				if _, isMatrix := path[len(path)-1].(*parser.MatrixSelector); isMatrix {
					if call, isCall := path[len(path)-2].(*parser.Call); isCall {
						switch call.Func.Name {
						case "rate", "irate", "increase":
							ok = true
						}
					}
				}
			}
			if !ok {
				l.report("target-counter-agg-rule", "panel %q: counter %s should be used in rate(), irate() or increase()", p.Title, n.Name)
			}
		}
		return nil
	})
}

// lintSchema decodes the dashboard as Grafana's schema describes it (panel options and field
// config per panel type, through the SDK's registered panel plugins).
func (l *linter) lintSchema(raw []byte) {
	var d grafana.Dashboard
	err := d.UnmarshalJSONStrict(raw)
	if errs, ok := err.(cog.BuildErrors); ok && len(errs) == 0 {
		err = nil
	}
	if err == nil {
		err = d.Validate()
	}
	if err != nil {
		for _, line := range strings.Split(strings.TrimSpace(err.Error()), "\n") {
			l.report("dashboard-schema-rule", "%s", line)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: dashboard-lint FILE.json...")
		os.Exit(2)
	}
	plugins.RegisterDefaultPlugins()
	var problems []string
	uids := map[string]string{}
	for _, file := range os.Args[1:] {
		l := &linter{file: file}
		data, err := os.ReadFile(file)
		if err != nil {
			l.report("read", "%v", err)
		} else {
			var d dashboard
			if err := json.Unmarshal(data, &d); err != nil {
				l.report("json", "%v", err)
			} else {
				if other, ok := uids[d.UID]; ok && d.UID != "" {
					l.report("dashboard-uid-rule", "uid %q is also used by %s", d.UID, other)
				}
				uids[d.UID] = file
				l.lintDashboard(&d)
				l.lintSchema(data)
			}
		}
		problems = append(problems, l.problems...)
		if len(l.problems) == 0 {
			fmt.Printf("%s: ok\n", file)
		}
	}
	sort.Strings(problems)
	for _, p := range problems {
		fmt.Println(p)
	}
	if len(problems) > 0 {
		os.Exit(1)
	}
}
