package main

import "testing"

func TestACleanDockerfilePasses(t *testing.T) {
	res, err := Lint("Dockerfile", []byte("FROM debian:12 AS build\nRUN true\n\nFROM scratch\nCOPY --from=build /etc/hostname /x\nENTRYPOINT [\"/x\"]\n"))
	if err != nil || len(res.Warnings) != 0 || res.Error != nil {
		t.Fatalf("clean Dockerfile flagged: %v %+v", err, res)
	}
}

// The linter must be able to fail: each of these breaks one rule.
func TestBrokenDockerfilesAreFlagged(t *testing.T) {
	for rule, df := range map[string]string{
		"FromAsCasing":          "FROM debian:12 as build\nRUN true\n",
		"JSONArgsRecommended":   "FROM debian:12\nENTRYPOINT /bin/true\n",
		"UndefinedVar":          "FROM debian:12\nENV PATH=$PATHH:/x\n",
		"StageNameCasing":       "FROM debian:12 AS Build\nRUN true\n",
		"SecretsUsedInArgOrEnv": "FROM debian:12\nENV DB_PASSWORD=x\n",
	} {
		res, err := Lint("Dockerfile", []byte(df))
		if err != nil {
			t.Fatalf("%s: %v", rule, err)
		}
		found := false
		for _, w := range res.Warnings {
			if w.RuleName == rule {
				found = true
			}
		}
		if !found {
			t.Errorf("%s not reported: %+v", rule, res.Warnings)
		}
	}
}
