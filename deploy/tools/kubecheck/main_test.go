package main

import (
	"strings"
	"testing"
)

const deployment = `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 45
      initContainers:
        - name: scrubs
          image: scrubs:0.1.0
          restartPolicy: Always
          readinessProbe:
            httpGet: {path: /readyz, port: 9600}
      containers:
        - name: web
          image: nginx
      volumes:
        - name: secrets
          secret: {secretName: s, defaultMode: 292}
`

func check(t *testing.T, doc string) []string {
	t.Helper()
	return CheckStream("test.yaml", strings.NewReader(doc))
}

func TestAValidDeploymentPasses(t *testing.T) {
	if p := check(t, deployment); len(p) != 0 {
		t.Fatalf("valid manifest rejected: %v", p)
	}
}

// The point of the check: a misspelled field must fail, not vanish.
func TestAMisspelledFieldIsRejected(t *testing.T) {
	for _, c := range []struct{ from, to, field string }{
		{"readinessProbe:", "readinesProbe:", "readinesProbe"},
		{"restartPolicy: Always", "restartPolicyy: Always", "restartPolicyy"},
		{"terminationGracePeriodSeconds: 45", "terminationGracePeriod: 45", "terminationGracePeriod"},
		{"secretName: s", "secret_name: s", "secret_name"},
	} {
		bad := strings.Replace(deployment, c.from, c.to, 1)
		if bad == deployment {
			t.Fatalf("%s not found in the fixture", c.from)
		}
		p := check(t, bad)
		if len(p) != 1 || !strings.Contains(p[0], c.field) || !strings.Contains(p[0], "Deployment web") {
			t.Errorf("%s: want one problem naming the field and object, got %v", c.field, p)
		}
	}
}

func TestWrongTypesDuplicateKeysAndUnknownKindsAreRejected(t *testing.T) {
	cases := map[string]string{
		"wrong type":    strings.Replace(deployment, "defaultMode: 292", `defaultMode: "0444"`, 1),
		"duplicate key": strings.Replace(deployment, "image: nginx", "image: nginx\n          image: httpd", 1),
		"unknown kind":  "apiVersion: apps/v1\nkind: Deploymnet\nmetadata: {name: x}\n",
		"no kind":       "apiVersion: v1\nmetadata: {name: x}\n",
	}
	for name, doc := range cases {
		if p := check(t, doc); len(p) == 0 {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestStreamsAndListsAreCheckedItemByItem(t *testing.T) {
	stream := "# a comment\n---\n" + deployment + "---\napiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  portz: []\n---\n"
	p := check(t, stream)
	if len(p) != 1 || !strings.Contains(p[0], "document 2 (Service s)") || !strings.Contains(p[0], "portz") {
		t.Fatalf("want the Service's unknown field in document 2, got %v", p)
	}
	list := "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: c}\n  data: {a: b}\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: d}\n  dataa: {a: b}\n"
	p = check(t, list)
	if len(p) != 1 || !strings.Contains(p[0], "items[1] (ConfigMap d)") {
		t.Fatalf("want items[1] rejected, got %v", p)
	}
}

// The pod rules a sidecar injection can break, each alone.
func TestPodRulesTheDecoderDoesNotCatch(t *testing.T) {
	for want, doc := range map[string]string{
		"names no volume":           strings.Replace(deployment, "      volumes:\n", "          volumeMounts: [{name: logs, mountPath: /l}]\n      volumes:\n", 1),
		"used twice":                strings.Replace(deployment, "- name: web", "- name: scrubs", 1),
		"does not declare":          strings.Replace(deployment, "port: 9600}", "port: admin}", 1),
		"probes need restartPolicy": strings.Replace(deployment, "          restartPolicy: Always\n", "", 1),
		"only on init containers":   strings.Replace(deployment, "          image: nginx", "          image: nginx\n          restartPolicy: Always", 1),
		"must be no more than 15":   strings.Replace(deployment, "          readinessProbe:", "          ports: [{name: scrubs-admin-port, containerPort: 9600}]\n          readinessProbe:", 1),
		"defined twice":             strings.Replace(deployment, "      volumes:\n", "      volumes:\n        - {name: secrets, emptyDir: {}}\n", 1),
	} {
		p := check(t, doc)
		if len(p) != 1 || !strings.Contains(p[0], want) {
			t.Errorf("want one problem with %q, got %v", want, p)
		}
	}
}
