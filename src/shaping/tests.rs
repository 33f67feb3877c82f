use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use tokio::time::Instant;

use super::bucket::Bucket;
use super::*;
use crate::config::{BucketSpec, Config, parse_str};
use crate::policy::{MoreFacts, RequestFacts};

fn config(delay_lines: &str) -> Config {
    let text = format!("http_port 3128\nhttp_access deny all\nacl slow src 192.0.2.0/24\n{delay_lines}");
    match parse_str(&text, Path::new("test.conf")) {
        Ok(loaded) => loaded.config,
        Err(diags) => panic!("{delay_lines}: {diags:#?}"),
    }
}

fn facts(client: &str) -> RequestFacts<'static> {
    RequestFacts {
        client: client.parse::<IpAddr>().unwrap(),
        method: "CONNECT",
        proto: "AUTHORITY",
        host: "example.com",
        port: 443,
        path: "",
        dst_addrs: &[],
        host_aliases: &[],
        local_port: 3128,
        user: None,
        more: MoreFacts::default(),
    }
}

#[test]
fn buckets_refill_at_their_rate_up_to_their_size() {
    let start = Instant::now();
    let spec = BucketSpec {
        rate: Some(1000),
        max: 4000,
    };
    let mut bucket = Bucket::new(spec, 50, start);
    assert_eq!(bucket.refill(start), Some(2000), "starts at delay_initial_bucket_level");
    bucket.spend(2000);
    assert_eq!(bucket.refill(start + Duration::from_millis(500)), Some(500));
    assert_eq!(bucket.time_to(1500), Some(Duration::from_secs(1)));
    assert_eq!(
        bucket.refill(start + Duration::from_secs(60)),
        Some(4000),
        "capped at the size"
    );
    let mut unlimited = Bucket::new(BucketSpec::UNLIMITED, 50, start);
    assert_eq!(unlimited.refill(start), None);
    assert_eq!(unlimited.time_to(1 << 40), None);
}

#[test]
fn a_request_goes_into_the_first_pool_that_allows_it() {
    let config = config(
        "delay_pools 2\n\
         delay_class 1 1\ndelay_parameters 1 1000/1000\ndelay_access 1 deny all\n\
         delay_class 2 2\ndelay_parameters 2 -1/-1 500/500\ndelay_access 2 allow slow\n",
    );
    let pools = Pools::new(&config);
    assert!(
        pools.assign(&config, &facts("198.51.100.1")).is_none(),
        "no pool takes it"
    );
    let shaper = pools.assign(&config, &facts("192.0.2.7")).expect("pool 2 takes it");
    assert_eq!(shaper.pool_number(), 2);
    // Class 2: the aggregate is unlimited, the client's bucket starts half full (250 bytes).
    assert_eq!(shaper.take(10_000), Ok(250));
    assert!(shaper.take(10_000).is_err(), "the client's bucket is empty");
    // Another client of the same pool has a bucket of its own.
    let other = pools.assign(&config, &facts("192.0.2.8")).unwrap();
    assert_eq!(other.take(100), Ok(100));
}

#[test]
fn class_three_shares_a_network_bucket_between_its_clients() {
    let config = config(
        "delay_pools 1\ndelay_class 1 3\ndelay_parameters 1 -1/-1 0/1000 -1/-1\ndelay_access 1 allow all\n\
         delay_initial_bucket_level 100\n",
    );
    let pools = Pools::new(&config);
    let a = pools.assign(&config, &facts("192.0.2.7")).unwrap();
    let b = pools.assign(&config, &facts("192.0.2.8")).unwrap();
    let elsewhere = pools.assign(&config, &facts("192.0.3.8")).unwrap();
    assert_eq!(a.take(600), Ok(600));
    assert!(
        b.take(600).is_err(),
        "the /24's bucket has 400 left: less than the 500 a grant waits for"
    );
    assert_eq!(b.take(400), Ok(400), "a smaller write takes what is left");
    assert_eq!(elsewhere.take(600), Ok(600), "another /24 has its own");
    assert!(a.take(1).is_err(), "rate 0 never refills");
}

#[test]
fn class_four_gives_each_user_a_bucket_of_their_own() {
    let config = config(
        "delay_pools 1\ndelay_class 1 4\ndelay_parameters 1 -1/-1 -1/-1 -1/-1 0/1000\ndelay_access 1 allow all\n\
         delay_initial_bucket_level 100\n",
    );
    assert_eq!(
        config.delay_pools.pools[0].user,
        Some(BucketSpec {
            rate: Some(0),
            max: 1000
        })
    );
    let pools = Pools::new(&config);
    let as_user = |client: &str, user: Option<&'static str>| {
        let mut f = facts(client);
        f.user = user;
        pools.assign(&config, &f).unwrap()
    };
    let alice = as_user("192.0.2.7", Some("alice"));
    let alice_elsewhere = as_user("192.0.3.9", Some("alice"));
    let bob = as_user("192.0.2.7", Some("bob"));
    let nobody = as_user("192.0.2.7", None);
    assert_eq!(alice.take(800), Ok(800));
    assert!(
        alice_elsewhere.take(800).is_err(),
        "the same user from another address shares the bucket: 200 left, less than a grant waits for"
    );
    assert_eq!(alice_elsewhere.take(200), Ok(200), "a smaller write takes what is left");
    assert!(alice.take(1).is_err(), "rate 0 never refills");
    assert_eq!(bob.take(800), Ok(800), "another user has a bucket of their own");
    assert_eq!(nobody.take(5000), Ok(5000), "no user: the other buckets are unlimited");
}

#[test]
fn no_pools_means_no_shaper() {
    let config = config("");
    let pools = Pools::new(&config);
    assert!(pools.is_empty());
    assert!(pools.assign(&config, &facts("192.0.2.7")).is_none());
}
