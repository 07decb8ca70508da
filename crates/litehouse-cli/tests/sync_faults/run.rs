//! One test run: the server process, the fault proxy, the timing wire and the devices, and the
//! phases a scenario is made of (kills mid-push and mid-pull, fault modes, quiescence checks).

use super::*;

/// A small deterministic generator (xorshift) for kill timings and the long run's plan.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// One test run: the server process, the fault proxy, the timing wire and the devices, with
/// a tally of what each device wrote.
pub(crate) struct Run {
    pub(crate) spec: ServeSpec,
    pub(crate) server: Option<ServeProc>,
    pub(crate) starts: u32,
    pub(crate) proxy: FaultProxy,
    pub(crate) wire: Wire,
    pub(crate) http: reqwest::Client,
    pub(crate) devices: Vec<Device>,
    /// Writes per device; each is a change to the device's own documents, so each one wins
    /// last-writer-wins on the server and must appear there exactly once.
    pub(crate) writes: Vec<u64>,
    /// Live documents each device owns (for patches and deletes).
    pub(crate) owned: Vec<Vec<String>>,
    pub(crate) kills: u32,
    pub(crate) rng: Rng,
}

pub(crate) fn device_config(
    dir: &Path,
    name: &str,
    url: &str,
    token: String,
    seed: u64,
) -> DeviceConfig {
    let mut config = DeviceConfig::new(dir.join(format!("{name}.db")), url, [COLLECTION]);
    config.device_id = Some(name.to_owned());
    config.token = Some(token);
    config.sync = SyncConfig {
        // Small batches: a loaded machine running a debug server can take over a second for
        // 32 entries on PostgreSQL (a batch that outlasts the timeout drains, but slowly: see
        // `slow_push_outlasting_the_timeout_still_drains`).
        max_batch: 16,
        base_backoff: 20,
        max_backoff: 300,
        poll_interval: 100,
        request_timeout: REQUEST_TIMEOUT.as_millis() as u64,
        jitter_seed: seed,
    };
    config.connect_timeout_ms = 500;
    config.log_retention = 200;
    config
}

impl Run {
    pub(crate) async fn start(dir: &Path, db: String, devices: usize, seed: u64) -> Run {
        // A free port the server then binds on every (re)start.
        let port = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let spec = ServeSpec {
            dir: dir.to_owned(),
            db,
            port,
            token_file: dir.join("sync.tokens.json"),
        };
        let names: Vec<String> = (0..devices).map(|i| format!("dev{i}")).collect();
        let mut tokens = Vec::new();
        for name in &names {
            tokens.push(device_token(&spec, name).await);
        }
        let server = spec.start(0).await;
        let http = reqwest::Client::new();
        let created = http
            .post(format!("{}/api/collections", spec.base()))
            .bearer_auth(ADMIN)
            .json(&json!({ "name": COLLECTION }))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201);
        let proxy = FaultProxy::start(spec.addr()).await.unwrap();
        let wire = Wire::start(proxy.addr()).await;
        let mut opened = Vec::new();
        for (i, (name, token)) in names.iter().zip(tokens).enumerate() {
            let config = device_config(dir, name, &wire.url(), token, seed + i as u64);
            opened.push(Device::open(config).await.unwrap());
        }
        Run {
            spec,
            server: Some(server),
            starts: 1,
            proxy,
            wire,
            http,
            writes: vec![0; devices],
            owned: vec![Vec::new(); devices],
            devices: opened,
            kills: 0,
            rng: Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1),
        }
    }

    /// `n` writes on device `i`: mostly creates, some patches, and (one in ten) a delete, all
    /// on the device's own documents.
    pub(crate) async fn write(&mut self, i: usize, n: u64) {
        let name = self.devices[i].device_id().to_owned();
        for k in 0..n {
            let roll = self.rng.below(10);
            let device = &self.devices[i];
            if roll == 0 && self.owned[i].len() > 2 {
                let at = self.rng.below(self.owned[i].len() as u64) as usize;
                let id = self.owned[i].swap_remove(at);
                device.delete(COLLECTION, &id).await.unwrap();
            } else if roll < 3 && !self.owned[i].is_empty() {
                let at = self.rng.below(self.owned[i].len() as u64) as usize;
                let id = &self.owned[i][at];
                device
                    .patch(COLLECTION, id, json!({ "patched": k }))
                    .await
                    .unwrap();
            } else {
                let doc = device
                    .create(
                        COLLECTION,
                        json!({ "by": name, "k": k, "pad": "x".repeat(64) }),
                    )
                    .await
                    .unwrap();
                self.owned[i].push(doc.id);
            }
            self.writes[i] += 1;
        }
    }

    pub(crate) async fn kill_server(&mut self) {
        self.server.take().expect("server running").kill().await;
        self.kills += 1;
    }

    pub(crate) async fn restart_server(&mut self) {
        assert!(self.server.is_none());
        self.server = Some(self.spec.start(self.starts).await);
        self.starts += 1;
    }

    /// Waits until every push of the listed devices is acknowledged.
    pub(crate) async fn drained(&self, which: &[usize], what: &str) {
        for &i in which {
            wait_for(&self.devices[i], what, QUIESCE_LIMIT, |s| {
                s.sync.pending == 0
            })
            .await;
        }
    }

    /// SIGKILL the server while a request to `route` is on the wire (after `after` more) and
    /// restart it after `down`. Returns whether a `route` request in flight died with the
    /// server (it may instead have got its answer out just before the kill).
    pub(crate) async fn kill_during(
        &mut self,
        route: Route,
        after: Duration,
        down: Duration,
        what: &str,
    ) -> bool {
        self.wire.wait_open(route, what).await;
        tokio::time::sleep(after).await;
        let before = self.wire.counts(route);
        self.kill_server().await;
        // The proxy sees the server's end and closes the device's connection: a request in
        // flight at the kill ends without its response.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let died = self.wire.counts(route).aborted > before.aborted;
        if !died {
            // E.g. the server had written its whole answer, still crossing the slowed wire.
            self.wire.with(|s| {
                for (route, (started, bytes)) in s.open.values().map(|(t, r, b)| (r, (t, b))) {
                    eprintln!(
                        "{what}: {route:?} open {:?} after the kill, {bytes} response bytes in",
                        started.elapsed()
                    );
                }
            });
        }
        tokio::time::sleep(down).await;
        self.restart_server().await;
        died
    }

    /// Slows the wire, closes what is open, resumes the `resume` devices and kills the server
    /// twice while a `route` request is in flight (after `delays[k]` on the wire); at least one
    /// kill must catch one. Then the wire passes again.
    pub(crate) async fn kill_twice_during(
        &mut self,
        route: Route,
        resume: &[usize],
        delays: [Duration; 2],
    ) {
        self.proxy
            .set_mode(FaultMode::Delay(Duration::from_millis(15)));
        self.proxy.cut_all();
        self.wire.wait_closed(route).await;
        for &i in resume {
            self.devices[i].resume().await.unwrap();
        }
        let first = self
            .kill_during(
                route,
                delays[0],
                Duration::from_millis(200),
                &format!("{route:?}, first kill"),
            )
            .await;
        let second = self
            .kill_during(
                route,
                delays[1],
                Duration::from_millis(100),
                &format!("{route:?}, second kill"),
            )
            .await;
        eprintln!("{route:?} kills: request died with the server: {first}, {second}");
        assert!(
            first || second,
            "neither kill caught a {route:?} request in flight"
        );
        self.proxy.set_mode(FaultMode::Pass);
    }

    /// Devices 0 and 1 queue writes while paused; their pushes are killed twice while on the
    /// wire (the server may be reading the batch, applying it, or have answered into the
    /// delayed wire: the lost-acknowledgement case).
    pub(crate) async fn kill_mid_push(&mut self, writes: u64, delays: [Duration; 2]) {
        for i in 0..2 {
            self.devices[i].pause().await.unwrap();
        }
        for i in 0..2 {
            self.write(i, writes).await;
        }
        self.kill_twice_during(Route::Push, &[0, 1], delays).await;
        self.drained(&[0, 1], "pushes after the kills").await;
    }

    /// Device `last` is paused while the others produce many changes; the server is killed
    /// twice while it pulls them (on a slowed wire), then it catches up.
    pub(crate) async fn kill_mid_pull(&mut self, writes: u64, delays: [Duration; 2]) {
        let puller = self.devices.len() - 1;
        self.devices[puller].pause().await.unwrap();
        for i in 0..puller {
            self.write(i, writes).await;
        }
        let writers: Vec<usize> = (0..puller).collect();
        self.drained(&writers, "writers pushed the page set").await;
        for i in 0..puller {
            self.devices[i].pause().await.unwrap();
        }
        self.kill_twice_during(Route::Pull, &[puller], delays).await;
        for i in 0..puller {
            self.devices[i].resume().await.unwrap();
        }
    }

    /// Every device writes while the proxy resets, drops, hangs, swallows responses and
    /// delays; hung connections are left for the devices to time out.
    pub(crate) async fn fault_modes(&mut self, writes: u64) {
        let phases = [
            (FaultMode::Reset, 300),
            (FaultMode::Drop, 300),
            (
                FaultMode::Hang,
                2 * REQUEST_TIMEOUT.as_millis() as u64 + 300,
            ),
            (
                FaultMode::BlackholeResponses,
                REQUEST_TIMEOUT.as_millis() as u64 + 500,
            ),
            (FaultMode::Delay(Duration::from_millis(5)), 300),
        ];
        for (mode, ms) in phases {
            self.proxy.set_mode(mode);
            // Faults apply to new connections: end the pooled keep-alive ones.
            self.proxy.cut_all();
            for i in 0..self.devices.len() {
                self.write(i, writes).await;
            }
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        self.proxy.set_mode(FaultMode::Pass);
    }

    /// Heals, waits for quiescence and checks the outcome.
    pub(crate) async fn check(&self) {
        assert!(self.server.is_some(), "the server runs when checking");
        for device in &self.devices {
            device.resume().await.unwrap();
        }
        self.drained(&(0..self.devices.len()).collect::<Vec<_>>(), "quiescence")
            .await;
        let base = self.spec.base();
        let (head, per_origin) = server_feed(&self.http, &base).await;
        for device in &self.devices {
            device.force_sync().await.unwrap();
            wait_for(
                device,
                "cursor at the server head, idle",
                QUIESCE_LIMIT,
                |s| {
                    s.sync.cursor.as_deref() == Some(head.as_str())
                        && s.sync.pending == 0
                        && s.sync.state == SyncState::Online
                },
            )
            .await;
            assert_eq!(
                device.stored_cursor().await.unwrap().as_deref(),
                Some(head.as_str()),
                "{}: stored cursor",
                device.device_id()
            );
            assert!(device.outbox(10).await.unwrap().is_empty());
            // The server agrees there is nothing after the device's cursor.
            let after = pull_page(&self.http, &base, &[("cursor", &head)]).await;
            assert!(after.changes.is_empty() && after.up_to_date);
        }

        // Exactly once: every origin once, and as many per device as it wrote.
        let twice: Vec<_> = per_origin.iter().filter(|(_, n)| **n != 1).collect();
        assert!(
            twice.is_empty(),
            "changes applied more than once: {twice:?}"
        );
        for (i, device) in self.devices.iter().enumerate() {
            let prefix = format!("sync:{}:", device.device_id());
            let applied = per_origin.keys().filter(|o| o.starts_with(&prefix)).count() as u64;
            assert_eq!(
                applied,
                self.writes[i],
                "{}: changes applied on the server vs writes",
                device.device_id()
            );
        }
        assert_eq!(
            per_origin.len() as u64,
            self.writes.iter().sum::<u64>(),
            "no change from elsewhere"
        );

        // Convergence.
        let expected = server_documents(&self.http, &base).await;
        let live: usize = self.owned.iter().map(Vec::len).sum();
        assert_eq!(expected.len(), live, "the server has every live document");
        for device in &self.devices {
            assert!(
                device_documents(device.store()).await == expected,
                "{} differs from the server",
                device.device_id()
            );
        }

        // No request outlived its timeout.
        let (longest, route) = self.wire.longest();
        assert!(
            longest <= REQUEST_TIMEOUT + SLACK,
            "a {route:?} request stayed open {longest:?} (timeout {REQUEST_TIMEOUT:?})"
        );
    }

    pub(crate) async fn finish(mut self) {
        for device in self.devices.drain(..) {
            device.stop().await;
        }
        self.wire.shutdown().await;
        self.proxy.shutdown().await;
        if let Some(server) = self.server.take() {
            server.kill().await;
        }
    }
}

pub(crate) async fn wait_for(
    device: &Device,
    what: &str,
    limit: Duration,
    f: impl Fn(&DeviceStatus) -> bool,
) {
    let started = Instant::now();
    loop {
        let status = device.status().await.unwrap();
        if f(&status) {
            return;
        }
        assert!(
            started.elapsed() < limit,
            "{}: {what} not reached in {limit:?}: {status:?}",
            device.device_id()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
