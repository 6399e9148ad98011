// Command kube-validate checks rendered Kubernetes manifests (the output of `helm template`)
// against the Kubernetes API types, strictly: every document is decoded into its Go type from
// k8s.io/api (or the prometheus-operator API for ServiceMonitor/PodMonitor) with unknown
// fields, duplicate keys and case-mismatched keys rejected, so a misspelt or misplaced field
// fails instead of being dropped silently by the API server. kubeconform would do the first
// part with downloaded JSON schemas; nothing can be downloaded here, while these types come
// through the Go module proxy.
//
// On top of decoding it checks what the types cannot express and the API server would reject
// or what would make the release not work (names, label syntax, port names, probes pointing at
// declared ports, mounts of declared volumes, Service and ServiceMonitor selectors that select
// something in the same render, dashboard JSON that parses), and with -policy the chart's own
// rules (non-root, read-only root filesystem, no privilege escalation, probes and resources on
// every long-running container).
//
// Usage: kube-validate [-policy] [-q] [FILE...]   (no FILE, or "-": read standard input)
// Exit status 0 when every document passes, 1 when any fails, 2 on usage errors.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// newObject returns an empty object of the Go type registered for apiVersion/kind.
var newObject = map[string]func() any{
	"v1/ConfigMap":                       func() any { return &corev1.ConfigMap{} },
	"v1/Secret":                          func() any { return &corev1.Secret{} },
	"v1/Service":                         func() any { return &corev1.Service{} },
	"v1/ServiceAccount":                  func() any { return &corev1.ServiceAccount{} },
	"v1/PersistentVolumeClaim":           func() any { return &corev1.PersistentVolumeClaim{} },
	"v1/Pod":                             func() any { return &corev1.Pod{} },
	"apps/v1/Deployment":                 func() any { return &appsv1.Deployment{} },
	"apps/v1/StatefulSet":                func() any { return &appsv1.StatefulSet{} },
	"batch/v1/Job":                       func() any { return &batchv1.Job{} },
	"policy/v1/PodDisruptionBudget":      func() any { return &policyv1.PodDisruptionBudget{} },
	"networking.k8s.io/v1/Ingress":       func() any { return &networkingv1.Ingress{} },
	"networking.k8s.io/v1/NetworkPolicy": func() any { return &networkingv1.NetworkPolicy{} },
	"autoscaling/v2/HorizontalPodAutoscaler": func() any {
		return &autoscalingv2.HorizontalPodAutoscaler{}
	},
	"rbac.authorization.k8s.io/v1/Role":        func() any { return &rbacv1.Role{} },
	"rbac.authorization.k8s.io/v1/RoleBinding": func() any { return &rbacv1.RoleBinding{} },
	"monitoring.coreos.com/v1/ServiceMonitor":  func() any { return &monitoringv1.ServiceMonitor{} },
	"monitoring.coreos.com/v1/PodMonitor":      func() any { return &monitoringv1.PodMonitor{} },
}

// document is one decoded manifest and where it came from.
type document struct {
	source string // "file#index"
	kind   string
	name   string
	obj    any
}

func (d *document) String() string { return fmt.Sprintf("%s (%s/%s)", d.source, d.kind, d.name) }

type checker struct {
	policy bool
	errs   []string
}

func (c *checker) fail(d *document, format string, args ...any) {
	c.errs = append(c.errs, fmt.Sprintf("%s: %s", d, fmt.Sprintf(format, args...)))
}

// splitDocuments splits a YAML stream on "---" lines.
func splitDocuments(data []byte) [][]byte {
	var docs [][]byte
	var cur bytes.Buffer
	for _, line := range strings.SplitAfter(string(data), "\n") {
		trimmed := strings.TrimRight(line, " \t\r\n")
		if trimmed == "---" || strings.HasPrefix(trimmed, "--- ") {
			docs = append(docs, append([]byte(nil), cur.Bytes()...))
			cur.Reset()
			continue
		}
		cur.WriteString(line)
	}
	docs = append(docs, cur.Bytes())
	return docs
}

// isBlank reports whether a YAML document holds only comments and whitespace (helm renders
// those for disabled templates).
func isBlank(doc []byte) bool {
	for _, line := range strings.Split(string(doc), "\n") {
		t := strings.TrimSpace(line)
		if t != "" && !strings.HasPrefix(t, "#") {
			return false
		}
	}
	return true
}

// decode turns one YAML document into its typed object, strictly.
func (c *checker) decode(source string, raw []byte) *document {
	d := &document{source: source, kind: "?", name: "?"}
	js, err := yaml.YAMLToJSONStrict(raw) // rejects duplicate keys
	if err != nil {
		c.fail(d, "YAML: %v", err)
		return nil
	}
	var tm struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(js, &tm); err != nil {
		c.fail(d, "not an object: %v", err)
		return nil
	}
	d.kind, d.name = tm.Kind, tm.Metadata.Name
	factory, ok := newObject[tm.APIVersion+"/"+tm.Kind]
	if !ok {
		c.fail(d, "unknown apiVersion/kind %q/%q", tm.APIVersion, tm.Kind)
		return nil
	}
	d.obj = factory()
	strictErrs, err := kjson.UnmarshalStrict(js, d.obj, kjson.DisallowUnknownFields)
	if err != nil {
		c.fail(d, "decode: %v", err)
		return nil
	}
	for _, e := range strictErrs {
		c.fail(d, "strict decode: %v", e)
	}
	if len(strictErrs) > 0 {
		return nil
	}
	return d
}

func (c *checker) checkMeta(d *document, m *metav1.ObjectMeta, dns1035 bool) {
	if m.Name == "" {
		c.fail(d, "metadata.name is empty")
	} else {
		var msgs []string
		if dns1035 {
			msgs = validation.IsDNS1035Label(m.Name)
		} else {
			msgs = validation.IsDNS1123Subdomain(m.Name)
		}
		for _, msg := range msgs {
			c.fail(d, "metadata.name %q: %s", m.Name, msg)
		}
	}
	c.checkLabels(d, "metadata.labels", m.Labels)
	for k := range m.Annotations {
		for _, msg := range validation.IsQualifiedName(strings.ToLower(k)) {
			c.fail(d, "metadata.annotations key %q: %s", k, msg)
		}
	}
}

func (c *checker) checkLabels(d *document, where string, labels map[string]string) {
	for k, v := range labels {
		for _, msg := range validation.IsQualifiedName(k) {
			c.fail(d, "%s key %q: %s", where, k, msg)
		}
		for _, msg := range validation.IsValidLabelValue(v) {
			c.fail(d, "%s[%q] value %q: %s", where, k, v, msg)
		}
	}
}

func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

var envNameRE = regexp.MustCompile(`^[-._a-zA-Z][-._a-zA-Z0-9]*$`)

// checkPodSpec checks one pod template. longRunning: a Deployment's pods (probes expected),
// not a helm test pod.
func (c *checker) checkPodSpec(d *document, where string, spec *corev1.PodSpec, longRunning bool) {
	if len(spec.Containers) == 0 {
		c.fail(d, "%s.containers is empty", where)
	}
	volumes := map[string]bool{}
	for _, v := range spec.Volumes {
		if volumes[v.Name] {
			c.fail(d, "%s.volumes: duplicate name %q", where, v.Name)
		}
		volumes[v.Name] = true
		for _, msg := range validation.IsDNS1123Label(v.Name) {
			c.fail(d, "%s.volumes name %q: %s", where, v.Name, msg)
		}
		if v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == "" {
			c.fail(d, "%s.volumes[%s].persistentVolumeClaim.claimName is empty", where, v.Name)
		}
		if v.ConfigMap != nil && v.ConfigMap.Name == "" {
			c.fail(d, "%s.volumes[%s].configMap.name is empty", where, v.Name)
		}
	}
	podNonRoot := spec.SecurityContext != nil && spec.SecurityContext.RunAsNonRoot != nil &&
		*spec.SecurityContext.RunAsNonRoot
	names := map[string]bool{}
	all := append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...)
	for i := range all {
		ct := &all[i]
		cw := fmt.Sprintf("%s.containers[%s]", where, ct.Name)
		if names[ct.Name] {
			c.fail(d, "%s: duplicate container name", cw)
		}
		names[ct.Name] = true
		for _, msg := range validation.IsDNS1123Label(ct.Name) {
			c.fail(d, "%s name: %s", cw, msg)
		}
		if strings.TrimSpace(ct.Image) == "" || strings.ContainsAny(ct.Image, " \t") {
			c.fail(d, "%s.image %q is empty or has spaces", cw, ct.Image)
		}
		if ct.ImagePullPolicy != "" && ct.ImagePullPolicy != corev1.PullAlways &&
			ct.ImagePullPolicy != corev1.PullIfNotPresent && ct.ImagePullPolicy != corev1.PullNever {
			c.fail(d, "%s.imagePullPolicy %q is not Always, IfNotPresent or Never", cw, ct.ImagePullPolicy)
		}
		portNames := map[string]bool{}
		portNumbers := map[int32]bool{}
		for _, p := range ct.Ports {
			if p.ContainerPort < 1 || p.ContainerPort > 65535 {
				c.fail(d, "%s port %d out of range", cw, p.ContainerPort)
			}
			if p.Name != "" {
				for _, msg := range validation.IsValidPortName(p.Name) {
					c.fail(d, "%s port name %q: %s", cw, p.Name, msg)
				}
				if portNames[p.Name] {
					c.fail(d, "%s duplicate port name %q", cw, p.Name)
				}
				portNames[p.Name] = true
			}
			portNumbers[p.ContainerPort] = true
		}
		for _, e := range ct.Env {
			if !envNameRE.MatchString(e.Name) {
				c.fail(d, "%s env name %q is not valid", cw, e.Name)
			}
		}
		for _, m := range ct.VolumeMounts {
			if !volumes[m.Name] {
				c.fail(d, "%s mounts volume %q that the pod does not declare", cw, m.Name)
			}
			if !strings.HasPrefix(m.MountPath, "/") {
				c.fail(d, "%s mountPath %q is not absolute", cw, m.MountPath)
			}
		}
		checkProbe := func(name string, p *corev1.Probe) {
			if p == nil {
				return
			}
			n := 0
			if p.GRPC != nil {
				n++
				if p.GRPC.Port < 1 || p.GRPC.Port > 65535 {
					c.fail(d, "%s %s.grpc.port %d out of range", cw, name, p.GRPC.Port)
				} else if !portNumbers[p.GRPC.Port] {
					c.fail(d, "%s %s.grpc.port %d is not a declared container port", cw, name, p.GRPC.Port)
				}
			}
			checkPortRef := func(kind string, port intstr.IntOrString) {
				if port.Type == intstr.String && !portNames[port.StrVal] {
					c.fail(d, "%s %s.%s.port %q is not a declared port name", cw, name, kind, port.StrVal)
				}
				if port.Type == intstr.Int && (port.IntVal < 1 || port.IntVal > 65535) {
					c.fail(d, "%s %s.%s.port %d out of range", cw, name, kind, port.IntVal)
				}
			}
			if p.HTTPGet != nil {
				n++
				checkPortRef("httpGet", p.HTTPGet.Port)
			}
			if p.TCPSocket != nil {
				n++
				checkPortRef("tcpSocket", p.TCPSocket.Port)
			}
			if p.Exec != nil {
				n++
			}
			if n != 1 {
				c.fail(d, "%s %s must have exactly one handler, has %d", cw, name, n)
			}
		}
		checkProbe("livenessProbe", ct.LivenessProbe)
		checkProbe("readinessProbe", ct.ReadinessProbe)
		checkProbe("startupProbe", ct.StartupProbe)
		for rn, q := range ct.Resources.Requests {
			if lim, ok := ct.Resources.Limits[rn]; ok && q.Cmp(lim) > 0 {
				c.fail(d, "%s requests.%s %s exceeds limits.%s %s", cw, rn, q.String(), rn, lim.String())
			}
		}
		if c.policy {
			sc := ct.SecurityContext
			// The container's own setting overrides the pod's. The one root container the
			// policy allows is one whose only capability is SYS_NICE (the loadgen's real-time
			// event loop: Kubernetes gives an added capability to a non-root process only through
			// file capabilities, which allowPrivilegeEscalation=false disables).
			nonRoot := podNonRoot
			if sc != nil && sc.RunAsNonRoot != nil {
				nonRoot = *sc.RunAsNonRoot
			}
			var added []corev1.Capability
			if sc != nil && sc.Capabilities != nil {
				added = sc.Capabilities.Add
			}
			for _, capability := range added {
				if capability != "SYS_NICE" {
					c.fail(d, "%s: policy: capability %s added (only SYS_NICE may be)", cw, capability)
				}
			}
			onlyNice := len(added) == 1 && added[0] == "SYS_NICE"
			if !nonRoot && !onlyNice {
				c.fail(d, "%s: policy: runAsNonRoot is not true", cw)
			}
			if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				c.fail(d, "%s: policy: readOnlyRootFilesystem is not true", cw)
			}
			if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				c.fail(d, "%s: policy: allowPrivilegeEscalation is not false", cw)
			}
			if sc == nil || sc.Capabilities == nil || !containsCap(sc.Capabilities.Drop, "ALL") {
				c.fail(d, "%s: policy: capabilities.drop does not hold ALL", cw)
			}
			if longRunning {
				if ct.LivenessProbe == nil || ct.ReadinessProbe == nil {
					c.fail(d, "%s: policy: liveness and readiness probes are required", cw)
				}
				if len(ct.Resources.Requests) == 0 {
					c.fail(d, "%s: policy: resources.requests are required", cw)
				}
			}
		}
	}
}

func containsCap(caps []corev1.Capability, want corev1.Capability) bool {
	for _, c := range caps {
		if c == want {
			return true
		}
	}
	return false
}

// podTemplate is a pod template found in the render, for the cross-object checks.
type podTemplate struct {
	owner  *document
	labels map[string]string
	spec   *corev1.PodSpec
}

func (c *checker) checkAll(docs []*document) {
	var pods []podTemplate
	var services []*corev1.Service
	var serviceDocs []*document
	claims := map[string]bool{}
	configMaps := map[string]bool{}
	serviceAccounts := map[string]bool{}
	seen := map[string]*document{}
	for _, d := range docs {
		key := d.kind + "/" + d.name
		if prev, ok := seen[key]; ok {
			c.fail(d, "same kind and name as %s", prev)
		}
		seen[key] = d
		switch o := d.obj.(type) {
		case *appsv1.Deployment:
			c.checkMeta(d, &o.ObjectMeta, false)
			if o.Spec.Replicas != nil && *o.Spec.Replicas < 0 {
				c.fail(d, "spec.replicas %d is negative", *o.Spec.Replicas)
			}
			if o.Spec.Selector == nil || len(o.Spec.Selector.MatchLabels) == 0 {
				c.fail(d, "spec.selector.matchLabels is empty")
			} else if !selects(o.Spec.Selector.MatchLabels, o.Spec.Template.Labels) {
				c.fail(d, "spec.selector %v does not match the template labels %v",
					o.Spec.Selector.MatchLabels, o.Spec.Template.Labels)
			}
			c.checkLabels(d, "spec.template.metadata.labels", o.Spec.Template.Labels)
			c.checkPodSpec(d, "spec.template.spec", &o.Spec.Template.Spec, true)
			pods = append(pods, podTemplate{d, o.Spec.Template.Labels, &o.Spec.Template.Spec})
		case *appsv1.StatefulSet:
			c.checkMeta(d, &o.ObjectMeta, false)
			c.checkPodSpec(d, "spec.template.spec", &o.Spec.Template.Spec, true)
			pods = append(pods, podTemplate{d, o.Spec.Template.Labels, &o.Spec.Template.Spec})
		case *corev1.Pod:
			c.checkMeta(d, &o.ObjectMeta, false)
			c.checkPodSpec(d, "spec", &o.Spec, false)
		case *batchv1.Job:
			c.checkMeta(d, &o.ObjectMeta, false)
			c.checkPodSpec(d, "spec.template.spec", &o.Spec.Template.Spec, false)
		case *corev1.Service:
			c.checkMeta(d, &o.ObjectMeta, true)
			if len(o.Spec.Ports) == 0 {
				c.fail(d, "spec.ports is empty")
			}
			for _, p := range o.Spec.Ports {
				if p.Port < 1 || p.Port > 65535 {
					c.fail(d, "port %d out of range", p.Port)
				}
				if len(o.Spec.Ports) > 1 && p.Name == "" {
					c.fail(d, "a Service with several ports must name each")
				}
			}
			services = append(services, o)
			serviceDocs = append(serviceDocs, d)
		case *corev1.ConfigMap:
			c.checkMeta(d, &o.ObjectMeta, false)
			configMaps[o.Name] = true
			for k, v := range o.Data {
				for _, msg := range validation.IsConfigMapKey(k) {
					c.fail(d, "data key %q: %s", k, msg)
				}
				if strings.HasSuffix(k, ".json") && !json.Valid([]byte(v)) {
					c.fail(d, "data[%q] is not valid JSON", k)
				}
			}
		case *corev1.PersistentVolumeClaim:
			c.checkMeta(d, &o.ObjectMeta, false)
			claims[o.Name] = true
			if len(o.Spec.AccessModes) == 0 {
				c.fail(d, "spec.accessModes is empty")
			}
			if _, ok := o.Spec.Resources.Requests[corev1.ResourceStorage]; !ok {
				c.fail(d, "spec.resources.requests.storage is missing")
			}
		case *corev1.ServiceAccount:
			c.checkMeta(d, &o.ObjectMeta, false)
			serviceAccounts[o.Name] = true
		case *monitoringv1.ServiceMonitor:
			c.checkMeta(d, &o.ObjectMeta, false)
		default:
			if m, ok := d.obj.(metav1.Object); ok {
				if m.GetName() == "" {
					c.fail(d, "metadata.name is empty")
				}
			}
		}
	}

	// A Service must select pods rendered here, and a named targetPort must exist on them.
	for i, svc := range services {
		d := serviceDocs[i]
		if len(svc.Spec.Selector) == 0 {
			continue // an external or manually managed Service
		}
		var matched []podTemplate
		for _, p := range pods {
			if selects(svc.Spec.Selector, p.labels) {
				matched = append(matched, p)
			}
		}
		if len(matched) == 0 {
			c.fail(d, "spec.selector %v selects no pod template in this render", svc.Spec.Selector)
			continue
		}
		for _, sp := range svc.Spec.Ports {
			if sp.TargetPort.Type != intstr.String {
				continue
			}
			for _, p := range matched {
				if !podHasPortName(p.spec, sp.TargetPort.StrVal) {
					c.fail(d, "targetPort %q is not a port name of %s", sp.TargetPort.StrVal, p.owner)
				}
			}
		}
	}
	// Pods must mount claims, config maps and use service accounts that exist here, unless
	// the name comes from the user (existingClaim): those we cannot see, and are told apart by
	// the caller with -external.
	for _, p := range pods {
		for _, v := range p.spec.Volumes {
			if v.PersistentVolumeClaim != nil && !claims[v.PersistentVolumeClaim.ClaimName] &&
				!external[v.PersistentVolumeClaim.ClaimName] {
				c.fail(p.owner, "volume %q uses claim %q that is not rendered here", v.Name,
					v.PersistentVolumeClaim.ClaimName)
			}
			if v.ConfigMap != nil && !configMaps[v.ConfigMap.Name] && !external[v.ConfigMap.Name] {
				c.fail(p.owner, "volume %q uses ConfigMap %q that is not rendered here", v.Name,
					v.ConfigMap.Name)
			}
		}
		if sa := p.spec.ServiceAccountName; sa != "" && sa != "default" && !serviceAccounts[sa] &&
			!external[sa] {
			c.fail(p.owner, "serviceAccountName %q is not rendered here", sa)
		}
	}
	// A ServiceMonitor must select a Service rendered here on a port that Service names.
	for _, d := range docs {
		sm, ok := d.obj.(*monitoringv1.ServiceMonitor)
		if !ok {
			continue
		}
		found := false
		for _, svc := range services {
			if !selects(sm.Spec.Selector.MatchLabels, svc.Labels) {
				continue
			}
			found = true
			for _, ep := range sm.Spec.Endpoints {
				if ep.Port != "" && !serviceHasPortName(svc, ep.Port) {
					c.fail(d, "endpoint port %q is not a port name of Service %s", ep.Port, svc.Name)
				}
			}
		}
		if !found {
			c.fail(d, "spec.selector %v selects no Service in this render", sm.Spec.Selector.MatchLabels)
		}
	}
}

func podHasPortName(spec *corev1.PodSpec, name string) bool {
	for _, ct := range spec.Containers {
		for _, p := range ct.Ports {
			if p.Name == name {
				return true
			}
		}
	}
	return false
}

func serviceHasPortName(svc *corev1.Service, name string) bool {
	for _, p := range svc.Spec.Ports {
		if p.Name == name {
			return true
		}
	}
	return false
}

// external holds names (claims, config maps, service accounts) that exist outside the render.
var external = map[string]bool{}

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	policy := flag.Bool("policy", false, "also enforce the chart's pod rules (non-root, read-only root filesystem, probes, resources)")
	quiet := flag.Bool("q", false, "print nothing on success")
	var ext listFlag
	flag.Var(&ext, "external", "a claim, ConfigMap or ServiceAccount name that exists outside the render (repeatable)")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: kube-validate [-policy] [-q] [-external NAME]... [FILE...]\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	for _, e := range ext {
		external[e] = true
	}
	files := flag.Args()
	if len(files) == 0 {
		files = []string{"-"}
	}
	c := &checker{policy: *policy}
	var docs []*document
	for _, f := range files {
		var data []byte
		var err error
		if f == "-" {
			data, err = io.ReadAll(os.Stdin)
		} else {
			data, err = os.ReadFile(f)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "kube-validate: %v\n", err)
			os.Exit(2)
		}
		for i, raw := range splitDocuments(data) {
			if isBlank(raw) {
				continue
			}
			if d := c.decode(fmt.Sprintf("%s#%d", f, i), raw); d != nil {
				docs = append(docs, d)
			}
		}
	}
	if len(docs) == 0 && len(c.errs) == 0 {
		fmt.Fprintln(os.Stderr, "kube-validate: no documents")
		os.Exit(1)
	}
	c.checkAll(docs)
	if len(c.errs) > 0 {
		sort.Strings(c.errs)
		for _, e := range c.errs {
			fmt.Fprintln(os.Stderr, e)
		}
		fmt.Fprintf(os.Stderr, "kube-validate: %d error(s)\n", len(c.errs))
		os.Exit(1)
	}
	if !*quiet {
		kinds := map[string]int{}
		for _, d := range docs {
			kinds[d.kind]++
		}
		var parts []string
		for k, n := range kinds {
			parts = append(parts, fmt.Sprintf("%d %s", n, k))
		}
		sort.Strings(parts)
		fmt.Printf("kube-validate: %d objects valid (%s)\n", len(docs), strings.Join(parts, ", "))
	}
}
