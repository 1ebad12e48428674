// Command kubecheck decodes Kubernetes manifests strictly against the
// official API types (k8s.io/api), so that a misspelled or misplaced field,
// a value of the wrong type, a duplicate key or an unknown kind fails
// instead of being dropped silently by the API server's lenient decoding.
//
// Usage: kubecheck FILE... ("-" or no file reads stdin). Each YAML document
// (and each item of a List) is checked; every problem is printed as
// FILE: document N (Kind name): problem, and the exit code is 1 if there
// was any. It needs no cluster: it is the decoding step of the API server
// with unknown fields rejected, plus the pod-spec rules of the API
// server's validation that a sidecar injection can break (see checkPod),
// not all of its validation, admission or defaulting.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// scheme knows the built-in API groups a workload chart uses.
var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme, appsv1.AddToScheme, batchv1.AddToScheme,
		policyv1.AddToScheme, rbacv1.AddToScheme, networkingv1.AddToScheme,
		autoscalingv2.AddToScheme,
	} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return s
}()

// CheckDocument decodes one YAML or JSON document strictly. It returns a
// description of the object ("Deployment web") and the problems found.
func CheckDocument(doc []byte) (string, []string) {
	var tm metav1.TypeMeta
	var meta struct {
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return "(unreadable)", []string{err.Error()}
	}
	_ = yaml.Unmarshal(doc, &meta)
	what := strings.TrimSpace(tm.Kind + " " + meta.Metadata.Name)
	if tm.APIVersion == "" || tm.Kind == "" {
		return what, []string{"apiVersion and kind are required"}
	}
	gv, err := schema.ParseGroupVersion(tm.APIVersion)
	if err != nil {
		return what, []string{err.Error()}
	}
	if tm.Kind == "List" && gv.Group == "" && gv.Version == "v1" {
		var list struct {
			APIVersion string            `json:"apiVersion"`
			Kind       string            `json:"kind"`
			Metadata   metav1.ListMeta   `json:"metadata,omitempty"`
			Items      []json.RawMessage `json:"items"`
		}
		if err := yaml.UnmarshalStrict(doc, &list); err != nil {
			return what, []string{err.Error()}
		}
		var problems []string
		for i, item := range list.Items {
			itemWhat, found := CheckDocument(item)
			for _, p := range found {
				problems = append(problems, fmt.Sprintf("items[%d] (%s): %s", i, itemWhat, p))
			}
		}
		return what, problems
	}
	obj, err := scheme.New(gv.WithKind(tm.Kind))
	if err != nil {
		return what, []string{fmt.Sprintf("unknown kind %s in %s (not a built-in API type this check knows)", tm.Kind, tm.APIVersion)}
	}
	// UnmarshalStrict: unknown fields and duplicate keys are errors, and a
	// value of the wrong type fails as the API server's decoder would.
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		return what, []string{err.Error()}
	}
	return what, checkObject(obj)
}

// checkObject applies checkPod to the pod template of a workload.
func checkObject(obj runtime.Object) []string {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		return checkPod(&o.Spec.Template.Spec, nil)
	case *appsv1.StatefulSet:
		claims := map[string]bool{}
		for _, c := range o.Spec.VolumeClaimTemplates {
			claims[c.Name] = true
		}
		return checkPod(&o.Spec.Template.Spec, claims)
	case *appsv1.DaemonSet:
		return checkPod(&o.Spec.Template.Spec, nil)
	case *batchv1.Job:
		return checkPod(&o.Spec.Template.Spec, nil)
	case *batchv1.CronJob:
		return checkPod(&o.Spec.JobTemplate.Spec.Template.Spec, nil)
	case *corev1.Pod:
		return checkPod(&o.Spec, nil)
	}
	return nil
}

// checkPod applies the rules of the API server's pod validation
// (k8s.io/kubernetes pkg/apis/core/validation) that adding a sidecar, its
// volumes, mounts, ports and probes can break, and that decoding alone
// does not catch.
func checkPod(spec *corev1.PodSpec, claims map[string]bool) []string {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	volumes := map[string]bool{}
	for _, v := range spec.Volumes {
		for _, msg := range validation.IsDNS1123Label(v.Name) {
			add("volume %q: %s", v.Name, msg)
		}
		if volumes[v.Name] {
			add("volume %q is defined twice", v.Name)
		}
		volumes[v.Name] = true
	}
	if len(spec.Containers) == 0 {
		add("a pod needs at least one container")
	}
	names := map[string]bool{}
	check := func(kind string, c *corev1.Container, init bool) {
		for _, msg := range validation.IsDNS1123Label(c.Name) {
			add("%s %q: %s", kind, c.Name, msg)
		}
		if names[c.Name] {
			add("container name %q is used twice", c.Name)
		}
		names[c.Name] = true
		sidecar := init && c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
		if c.RestartPolicy != nil && !sidecar {
			add("%s %q: restartPolicy is allowed only on init containers, and only Always", kind, c.Name)
		}
		if init && !sidecar && (c.ReadinessProbe != nil || c.LivenessProbe != nil || c.StartupProbe != nil) {
			add("%s %q: probes need restartPolicy: Always on an init container", kind, c.Name)
		}
		ports := map[string]bool{}
		for _, p := range c.Ports {
			if p.Name == "" {
				continue
			}
			for _, msg := range validation.IsValidPortName(p.Name) {
				add("%s %q: port %q: %s", kind, c.Name, p.Name, msg)
			}
			ports[p.Name] = true
		}
		for _, probe := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe, c.StartupProbe} {
			if probe == nil || probe.HTTPGet == nil {
				continue
			}
			if port := probe.HTTPGet.Port; port.StrVal != "" && !ports[port.StrVal] {
				add("%s %q: a probe names port %q, which the container does not declare", kind, c.Name, port.StrVal)
			}
		}
		paths := map[string]bool{}
		for _, m := range c.VolumeMounts {
			if !volumes[m.Name] && !claims[m.Name] {
				add("%s %q: volumeMount %q names no volume of the pod", kind, c.Name, m.Name)
			}
			if paths[m.MountPath] {
				add("%s %q: two volumeMounts at %s", kind, c.Name, m.MountPath)
			}
			paths[m.MountPath] = true
		}
	}
	for i := range spec.InitContainers {
		check("init container", &spec.InitContainers[i], true)
	}
	for i := range spec.Containers {
		check("container", &spec.Containers[i], false)
	}
	return problems
}

// CheckStream checks every document of a YAML stream.
func CheckStream(name string, r io.Reader) []string {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(r))
	var problems []string
	for n := 1; ; n++ {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: document %d: %v", name, n, err))
			break
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			n--
			continue
		}
		what, found := CheckDocument(doc)
		for _, p := range found {
			problems = append(problems, fmt.Sprintf("%s: document %d (%s): %s", name, n, what, p))
		}
	}
	return problems
}

// stripComments drops comment-only lines, to tell an empty document.
func stripComments(doc []byte) []byte {
	var out bytes.Buffer
	for _, line := range bytes.Split(doc, []byte("\n")) {
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] != '#' {
			out.Write(line)
			out.WriteByte('\n')
		}
	}
	return out.Bytes()
}

func main() {
	files := os.Args[1:]
	if len(files) == 0 {
		files = []string{"-"}
	}
	var problems []string
	checked := 0
	for _, f := range files {
		var r io.Reader
		name := f
		if f == "-" {
			r, name = os.Stdin, "stdin"
		} else {
			fh, err := os.Open(f)
			if err != nil {
				problems = append(problems, err.Error())
				continue
			}
			defer fh.Close()
			r = fh
		}
		problems = append(problems, CheckStream(name, r)...)
		checked++
	}
	if len(problems) > 0 {
		fmt.Fprintf(os.Stderr, "kubecheck: %d problem(s)\n", len(problems))
		for _, p := range problems {
			fmt.Fprintf(os.Stderr, "  %s\n", p)
		}
		os.Exit(1)
	}
	fmt.Printf("kubecheck: %d input(s) decoded strictly, no problem\n", checked)
}
