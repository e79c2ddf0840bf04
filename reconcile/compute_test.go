package reconcile_test

import (
	"testing"

	"berth.dev/berth/internal/testutil/golden"
	"berth.dev/berth/project"
	"berth.dev/berth/project/projecttest"
	"berth.dev/berth/reconcile"
	rt "berth.dev/berth/reconcile/reconciletest"
	"berth.dev/berth/runtime"
)

// Golden plan tests (TESTING.md §3): one per decision branch of Compute,
// named after the decision. go test ./reconcile -update rewrites
// testdata/<name>.plan; review the diff like code.

// webDB is a database with a volume and a healthcheck, and a web service
// that waits for it to be healthy.
const webDB = `
services:
  db:
    image: postgres
    volumes: ["pgdata:/var/lib/postgresql/data"]
    healthcheck: {test: ["CMD", "true"]}
  web:
    image: web
    depends_on: {db: {condition: service_healthy}}
volumes:
  pgdata: {}
`

// upToDate is webDB fully up: nothing to do.
func upToDate(m *project.Model) *rt.B {
	return rt.New(m).Network("default").Volume("pgdata").AllImages().Running("db", 1).Running("web", 1)
}

// --- fresh up

func TestFreshUpCreatesNetworkVolumeThenContainersInDependencyOrder(t *testing.T) {
	m := projecttest.Load(t, webDB)
	golden.Plan(t, m, rt.New(m).AllImages(), reconcile.Options{}, "fresh_up")
}

func TestFreshUpPullsMissingImagesOncePerReference(t *testing.T) {
	m := projecttest.Load(t, `
services:
  a: {image: busybox}
  b: {image: busybox}
  c: {image: alpine}
`)
	golden.Plan(t, m, rt.New(m).Image("alpine", "sha256:aaaa"), reconcile.Options{}, "fresh_up_pull")
}

func TestFreshUpBuildsServicesWithBuildSection(t *testing.T) {
	// app has no image: it is built as demo-app; tool names its image
	// but pull_policy build builds it too.
	m := projecttest.Load(t, `
services:
  app: {build: .}
  tool: {image: registry.example/tool:1, build: ., pull_policy: build}
`)
	golden.Plan(t, m, rt.New(m), reconcile.Options{}, "fresh_up_build")
}

func TestSecondUpPlansNothing(t *testing.T) {
	m := projecttest.Load(t, webDB)
	golden.Plan(t, m, upToDate(m), reconcile.Options{}, "noop")
}

// --- config hash

func TestRecreateWhenImageDigestChanges(t *testing.T) {
	m := projecttest.Load(t, webDB)
	obs := rt.New(m).Network("default").Volume("pgdata").AllImages().
		Running("db", 1).Running("web", 1, rt.ImageDigest("sha256:old")) // web diverged
	golden.Plan(t, m, obs, reconcile.Options{}, "recreate_image_digest")
}

func TestRecreateWhenEnvironmentChangesNamesEnvironment(t *testing.T) {
	// The machine was made from the old file; up runs with the new one.
	old := projecttest.Load(t, `
services:
  web: {image: web, environment: {MODE: dev}}
`)
	m := projecttest.Load(t, `
services:
  web: {image: web, environment: {MODE: prod}}
`)
	obs := rt.New(old).Network("default").AllImages().Running("web", 1)
	golden.Plan(t, m, obs, reconcile.Options{}, "recreate_environment")
}

func TestRecreateNamesEveryChangedField(t *testing.T) {
	old := projecttest.Load(t, `
services:
  web: {image: web, command: ["httpd", "-f"], environment: {MODE: dev}}
`)
	m := projecttest.Load(t, `
services:
  web: {image: web, command: ["httpd", "-f", "-v"], environment: {MODE: prod}}
`)
	obs := rt.New(old).Network("default").AllImages().Running("web", 1)
	golden.Plan(t, m, obs, reconcile.Options{}, "recreate_two_fields")
}

func TestContainerWithoutFieldDigestsIsRecreatedWithPlainCause(t *testing.T) {
	m := projecttest.Load(t, `services: {web: {image: web}}`)
	obs := rt.New(m).Network("default").AllImages().Running("web", 1, rt.Diverged("environment"), rt.NoHashFields())
	golden.Plan(t, m, obs, reconcile.Options{}, "recreate_no_field_digests")
}

// --- replicas

func TestScaleUpCreatesMissingReplicas(t *testing.T) {
	m := projecttest.Load(t, `services: {web: {image: web}}`)
	obs := rt.New(m).Network("default").AllImages().Running("web", 1)
	golden.Plan(t, m, obs, reconcile.Options{Scale: map[string]int{"web": 3}}, "scale_up_1_to_3")
}

func TestScaleFromFileDeployReplicas(t *testing.T) {
	m := projecttest.Load(t, `services: {web: {image: web, deploy: {replicas: 2}}}`)
	golden.Plan(t, m, rt.New(m).Network("default").AllImages(), reconcile.Options{}, "scale_deploy_replicas")
}

func TestScaleDownRemovesHighestNumbers(t *testing.T) {
	m := projecttest.Load(t, `services: {web: {image: web}}`)
	obs := rt.New(m).Network("default").AllImages().Running("web", 1).Running("web", 2).Exited("web", 3, 0)
	golden.Plan(t, m, obs, reconcile.Options{Scale: map[string]int{"web": 1}}, "scale_down_3_to_1")
}

func TestScaleDownRemovesDivergedReplicasFirst(t *testing.T) {
	// web-1 is diverged: it goes, web-2 and web-3 stay (they match).
	m := projecttest.Load(t, `services: {web: {image: web}}`)
	obs := rt.New(m).Network("default").AllImages().
		Running("web", 1, rt.ImageDigest("sha256:old")).Running("web", 2).Running("web", 3)
	golden.Plan(t, m, obs, reconcile.Options{Scale: map[string]int{"web": 2}}, "scale_down_diverged_first")
}

func TestScaleToZeroRemovesEveryReplica(t *testing.T) {
	m := projecttest.Load(t, `services: {web: {image: web}, db: {image: db}}`)
	obs := rt.New(m).Network("default").AllImages().Running("web", 1).Running("web", 2).Running("db", 1)
	golden.Plan(t, m, obs, reconcile.Options{Scale: map[string]int{"web": 0}}, "scale_to_zero")
}

func TestScaleFillsLowestFreeNumbers(t *testing.T) {
	// web-2 and web-4 exist; scale 4 creates web-1 and web-3.
	m := projecttest.Load(t, `services: {web: {image: web, scale: 4}}`)
	obs := rt.New(m).Network("default").AllImages().Running("web", 2).Running("web", 4)
	golden.Plan(t, m, obs, reconcile.Options{}, "scale_fills_gap")
}

func TestDuplicateReplicaNumberKeepsTheMatchingOne(t *testing.T) {
	// Two containers claim web-1 (a recreate cut short): the one matching
	// the config is kept, the other removed.
	m := projecttest.Load(t, `services: {web: {image: web}}`)
	obs := rt.New(m).Network("default").AllImages().
		Running("web", 1, rt.ID("aaa"), rt.ImageDigest("sha256:old")).Exited("web", 1, 0, rt.ID("bbb"))
	p := golden.Plan(t, m, obs, reconcile.Options{}, "duplicate_replica_number")
	for _, a := range p.Actions {
		if a.Kind == reconcile.StopContainer && a.Target != "aaa" {
			t.Errorf("stopped %s, want the diverged aaa", a.Target)
		}
	}
}

// --- orphans and one-offs

func TestOrphansAreLeftAloneWithoutRemoveOrphans(t *testing.T) {
	m := projecttest.Load(t, `services: {web: {image: web}}`)
	obs := rt.New(m).Network("default").AllImages().Running("web", 1).Orphan("old", 1)
	golden.Plan(t, m, obs, reconcile.Options{}, "orphans_ignored")
}

func TestRemoveOrphansStopsAndRemovesThem(t *testing.T) {
	m := projecttest.Load(t, `services: {web: {image: web}}`)
	obs := rt.New(m).Network("default").AllImages().Running("web", 1).
		Orphan("old", 1).Orphan("old", 2, rt.Status(runtime.StatusExited))
	golden.Plan(t, m, obs, reconcile.Options{RemoveOrphans: true}, "orphans_removed")
}

func TestOneOffContainersAreIgnoredByUp(t *testing.T) {
	// A one-off of web, even diverged and exited, is neither recreated,
	// started nor counted as a replica (web-1 is still missing).
	m := projecttest.Load(t, `services: {web: {image: web}}`)
	obs := rt.New(m).Network("default").AllImages().
		OneOff("web", rt.Diverged("command"), rt.Status(runtime.StatusExited))
	golden.Plan(t, m, obs, reconcile.Options{RemoveOrphans: true}, "one_off_ignored")
}

// --- dependencies

const restartDep = `
services:
  db: {image: postgres}
  web:
    image: web
    depends_on: {db: {condition: service_started, restart: true}}
  worker:
    image: worker
    depends_on: {db: {condition: service_started}}
`

func TestRecreatedDependencyRestartsDependentWithRestartTrue(t *testing.T) {
	// db is recreated: web (restart: true) restarts after it, worker
	// (no restart) is left running.
	m := projecttest.Load(t, restartDep)
	obs := rt.New(m).Network("default").AllImages().
		Running("db", 1, rt.ImageDigest("sha256:old")).Running("web", 1).Running("worker", 1)
	golden.Plan(t, m, obs, reconcile.Options{}, "dependency_recreated_restart")
}

func TestRestartNamesEveryRecreatedDependencyAndDependentsWaitForIt(t *testing.T) {
	// cache and db are recreated: web restarts once, after both; worker
	// (exited) starts after web's restart.
	m := projecttest.Load(t, `
services:
  cache: {image: redis}
  db: {image: postgres, healthcheck: {test: ["CMD", "true"]}}
  web:
    image: web
    depends_on:
      db: {condition: service_healthy, restart: true}
      cache: {condition: service_started, restart: true}
  worker: {image: worker, depends_on: [web]}
`)
	obs := rt.New(m).Network("default").AllImages().
		Running("cache", 1, rt.Diverged("command")).Running("db", 1, rt.Env("PGDATA", "/old")).
		Running("web", 1).Exited("worker", 1, 0)
	golden.Plan(t, m, obs, reconcile.Options{}, "dependencies_recreated_restart_chain")
}

func TestRecreatedDependencyLeavesDependentWithoutRestart(t *testing.T) {
	m := projecttest.Load(t, `
services:
  db: {image: postgres}
  web: {image: web, depends_on: {db: {condition: service_started}}}
`)
	obs := rt.New(m).Network("default").AllImages().
		Running("db", 1, rt.ImageDigest("sha256:old")).Running("web", 1)
	golden.Plan(t, m, obs, reconcile.Options{}, "dependency_recreated_no_restart")
}

func TestUnchangedRunningDependencyBecomesNeed(t *testing.T) {
	// db runs unchanged: web's start has no edge to wait on, so it
	// carries a Need the executor checks on the machine.
	m := projecttest.Load(t, webDB)
	obs := rt.New(m).Network("default").Volume("pgdata").AllImages().Running("db", 1)
	golden.Plan(t, m, obs, reconcile.Options{}, "dependency_running_need")
}

func TestNoDepsPlansOnlySelectedServiceWithNeedOnDependency(t *testing.T) {
	m := projecttest.Load(t, `
services:
  db: {image: postgres, healthcheck: {test: ["CMD", "true"]}}
  cache: {image: redis}
  web:
    image: web
    depends_on:
      db: {condition: service_healthy}
      cache: {condition: service_started, required: false}
`)
	golden.Plan(t, m, rt.New(m).AllImages(), reconcile.Options{Services: []string{"web"}, NoDeps: true}, "no_deps")
}

func TestSelectedServicePullsInItsDependencies(t *testing.T) {
	// up web: db comes too (transitively: db needs conf), other does not.
	m := projecttest.Load(t, `
services:
  conf: {image: conf}
  db: {image: postgres, depends_on: [conf]}
  web: {image: web, depends_on: [db]}
  other: {image: other}
`)
	golden.Plan(t, m, rt.New(m).AllImages(), reconcile.Options{Services: []string{"web"}}, "selected_with_dependencies")
}

func TestServiceHealthyDependencyEdge(t *testing.T) {
	m := projecttest.Load(t, `
services:
  db: {image: postgres, healthcheck: {test: ["CMD", "true"]}, scale: 2}
  web: {image: web, depends_on: {db: {condition: service_healthy}}}
`)
	golden.Plan(t, m, rt.New(m).Network("default").AllImages(), reconcile.Options{}, "depends_on_healthy")
}

func TestServiceCompletedSuccessfullyDependencyEdge(t *testing.T) {
	m := projecttest.Load(t, `
services:
  migrate: {image: app, command: ["migrate"]}
  web: {image: web, depends_on: {migrate: {condition: service_completed_successfully}}}
`)
	golden.Plan(t, m, rt.New(m).Network("default").AllImages(), reconcile.Options{}, "depends_on_completed")
}

func TestLinkedServiceCreateWaitsForTargetStart(t *testing.T) {
	m := projecttest.Load(t, `
services:
  db: {image: postgres}
  web: {image: web, links: ["db:database"]}
`)
	golden.Plan(t, m, rt.New(m).Network("default").AllImages(), reconcile.Options{}, "links")
}

func TestNetworkModeServiceCreateWaitsForTargetCreate(t *testing.T) {
	// web joins vpn's network namespace: no network of its own, created
	// after vpn, started after vpn starts.
	m := projecttest.Load(t, `
services:
  vpn: {image: vpn}
  web: {image: web, network_mode: "service:vpn"}
`)
	golden.Plan(t, m, rt.New(m).AllImages(), reconcile.Options{}, "network_mode_service")
}

func TestVolumesFromCreateWaitsForSourceCreate(t *testing.T) {
	m := projecttest.Load(t, `
services:
  data: {image: data, volumes: ["/data"]}
  app: {image: app, volumes_from: ["data:ro"]}
`)
	golden.Plan(t, m, rt.New(m).Network("default").AllImages(), reconcile.Options{}, "volumes_from")
}

// --- flags

func TestForceRecreateRecreatesUnchangedContainers(t *testing.T) {
	m := projecttest.Load(t, webDB)
	golden.Plan(t, m, upToDate(m), reconcile.Options{ForceRecreate: true}, "force_recreate")
}

func TestNoRecreateKeepsDivergedContainers(t *testing.T) {
	// web-1 diverged and running: kept; web-2 diverged and exited: kept
	// and started.
	m := projecttest.Load(t, `services: {web: {image: web, scale: 2}}`)
	obs := rt.New(m).Network("default").AllImages().
		Running("web", 1, rt.ImageDigest("sha256:old")).Exited("web", 2, 1, rt.ImageDigest("sha256:old"))
	golden.Plan(t, m, obs, reconcile.Options{NoRecreate: true}, "no_recreate")
}

func TestNoStartCreatesWithoutStarting(t *testing.T) {
	m := projecttest.Load(t, webDB)
	golden.Plan(t, m, rt.New(m).AllImages(), reconcile.Options{NoStart: true}, "no_start")
}

func TestInactiveProfileServiceIsNotStarted(t *testing.T) {
	m := projecttest.Load(t, `
services:
  web: {image: web}
  debug: {image: busybox, profiles: [debug]}
`)
	golden.Plan(t, m, rt.New(m).AllImages(), reconcile.Options{}, "profile_inactive")
}

func TestActiveProfileServiceIsStarted(t *testing.T) {
	m, err := projecttest.LoadWith(t, `
services:
  web: {image: web}
  debug: {image: busybox, profiles: [debug]}
`, project.Options{Profiles: []string{"debug"}})
	if err != nil {
		t.Fatal(err)
	}
	golden.Plan(t, m, rt.New(m).Network("default").AllImages().Running("web", 1), reconcile.Options{}, "profile_active")
}

// --- container states

func TestCrashedContainerIsStartedAgain(t *testing.T) {
	m := projecttest.Load(t, `services: {web: {image: web}}`)
	obs := rt.New(m).Network("default").AllImages().Exited("web", 1, 137)
	golden.Plan(t, m, obs, reconcile.Options{}, "crashed_started")
}

func TestStoppedContainerIsStarted(t *testing.T) {
	m := projecttest.Load(t, webDB)
	obs := rt.New(m).Network("default").Volume("pgdata").AllImages().Exited("db", 1, 0).Running("web", 1)
	golden.Plan(t, m, obs, reconcile.Options{}, "stopped_started")
}

func TestCreatedContainerIsStarted(t *testing.T) {
	m := projecttest.Load(t, webDB)
	obs := rt.New(m).Network("default").Volume("pgdata").AllImages().Created("db", 1).Created("web", 1)
	golden.Plan(t, m, obs, reconcile.Options{}, "created_started")
}

func TestPausedAndRestartingAreLeftAloneDeadIsStarted(t *testing.T) {
	m := projecttest.Load(t, `services: {web: {image: web, scale: 3}}`)
	obs := rt.New(m).Network("default").AllImages().
		Running("web", 1, rt.Status(runtime.StatusPaused)).Running("web", 2, rt.Status(runtime.StatusRestarting)).
		Running("web", 3, rt.Status(runtime.StatusDead))
	golden.Plan(t, m, obs, reconcile.Options{}, "paused_restarting_dead")
}

// --- networks

func TestExternalNetworkPresentIsNotCreated(t *testing.T) {
	m := projecttest.Load(t, `
services:
  web: {image: web, networks: [front, outside]}
networks:
  front: {}
  outside: {external: true, name: corp_net}
`)
	obs := rt.New(m).ExternalNetwork("corp_net").AllImages()
	golden.Plan(t, m, obs, reconcile.Options{}, "external_network_present")
}

func TestOnlyNetworksOfDesiredServicesAreCreated(t *testing.T) {
	m := projecttest.Load(t, `
services:
  web: {image: web, networks: [front]}
  db: {image: db, networks: [back]}
networks:
  front: {}
  back: {}
`)
	golden.Plan(t, m, rt.New(m).AllImages(), reconcile.Options{Services: []string{"web"}}, "networks_of_desired_only")
}

// --- down

const downProject = `
services:
  db: {image: postgres, volumes: ["pgdata:/data"]}
  api: {image: api, depends_on: [db]}
  web: {image: web, depends_on: [api]}
  outside: {image: x, networks: [ext]}
volumes:
  pgdata: {}
  shared: {external: true}
networks:
  ext: {external: true, name: corp_net}
`

func downObserved(m *project.Model) *rt.B {
	return rt.New(m).Network("default").ExternalNetwork("corp_net").Volume("pgdata").Volume("shared").
		AnonymousVolume("0123abcd").AllImages().
		Running("db", 1).Running("api", 1).Exited("api", 2, 0).Running("web", 1).Running("outside", 1).
		OneOff("web").Orphan("old", 1)
}

func TestDownStopsDependentsFirstThenRemovesNetworks(t *testing.T) {
	m := projecttest.Load(t, downProject)
	golden.Plan(t, m, downObserved(m), reconcile.Options{Down: true}, "down")
}

func TestDownVolumesRemovesProjectVolumesButNotExternal(t *testing.T) {
	m := projecttest.Load(t, downProject)
	golden.Plan(t, m, downObserved(m), reconcile.Options{Down: true, DownVolumes: true}, "down_volumes")
}

func TestDownOfOneServiceLeavesNetworksAndVolumes(t *testing.T) {
	m := projecttest.Load(t, downProject)
	golden.Plan(t, m, downObserved(m), reconcile.Options{Down: true, DownVolumes: true, Services: []string{"api", "db"}}, "down_one_service")
}

func TestDownOfNothingPlansNothing(t *testing.T) {
	m := projecttest.Load(t, downProject)
	golden.Plan(t, m, rt.New(m), reconcile.Options{Down: true}, "down_nothing")
}

func TestDownLooksThroughServicesWithNothingToStop(t *testing.T) {
	// api is exited: db still stops after web, which depends on it
	// through api.
	m := projecttest.Load(t, downProject)
	obs := rt.New(m).Network("default").AllImages().Running("db", 1).Exited("api", 1, 0).Running("web", 1)
	golden.Plan(t, m, obs, reconcile.Options{Down: true}, "down_look_through")
}
