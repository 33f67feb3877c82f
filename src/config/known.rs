//! The one table of Squid 5.7's directive names (every `TAG:` of its squid.conf, plus the old
//! names its parser still accepts) and what hopproxy does with each: supported with Squid's
//! semantics, ignored because it only concerns Squid's cache, ignored because Squid 5.7 ignores
//! it too, or rejected with what to use instead. `check --list-directives` prints it and
//! docs/dialect.md explains the classes.

/// What hopproxy does with a Squid directive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Implemented with Squid's semantics.
    Supported,
    /// Implemented for Squid's default value only (a config that restates the default loads);
    /// any other value is rejected with the text as the hint.
    DefaultOnly {
        default: &'static str,
        instead: &'static str,
    },
    /// Accepted and ignored: it only concerns Squid's cache or the machinery around it (ICP,
    /// digests, store, cache manager, memory and process tuning). The text says why.
    Caching(&'static str),
    /// Accepted and ignored because Squid 5.7 ignores it as well (obsolete; Squid prints
    /// "ERROR: Directive '…' is obsolete." and goes on). The text is Squid's advice.
    Obsolete(&'static str),
    /// Rejected: the text says what to use instead.
    Rejected(&'static str),
}

impl Class {
    /// A short name for listings: supported, default-only, caching, obsolete, rejected.
    pub fn label(&self) -> &'static str {
        match self {
            Class::Supported => "supported",
            Class::DefaultOnly { .. } => "default-only",
            Class::Caching(_) => "ignored-cache",
            Class::Obsolete(_) => "ignored-obsolete",
            Class::Rejected(_) => "rejected",
        }
    }
}

/// hopproxy's own extension: a global cap on concurrent client connections.
pub const EXT_MAX_CLIENT_CONNECTIONS: &str = "max_client_connections";
/// hopproxy's own extension: the address of the Prometheus `/metrics` endpoint.
pub const EXT_METRICS_PORT: &str = "metrics_port";
/// hopproxy's own extension: terminate tunnels whose SNI names another host (domain fronting).
pub const EXT_TUNNEL_SNI_MUST_MATCH: &str = "tunnel_sni_must_match";

/// Old names Squid 5.7's parser still accepts, with the current name they stand for (found by
/// feeding every name in the squid binary to `squid -k parse`).
pub const ALIASES: &[(&str, &str)] = &[
    ("cache_access_log", "access_log"),
    ("no_cache", "cache"),
    ("pconn_timeout", "server_idle_pconn_timeout"),
    ("persistent_request_timeout", "client_idle_pconn_timeout"),
    ("redirect_program", "url_rewrite_program"),
    ("redirect_children", "url_rewrite_children"),
    ("redirect_rewrites_host_header", "url_rewrite_host_header"),
    ("redirector_access", "url_rewrite_access"),
    ("redirector_bypass", "url_rewrite_bypass"),
    ("storeurl_rewrite_program", "store_id_program"),
    ("storeurl_rewrite_children", "store_id_children"),
    ("storeurl_rewrite_access", "store_id_access"),
    ("storeurl_rewrite_bypass", "store_id_bypass"),
    ("cache_swap_log", "cache_swap_state"),
    (
        "collapsed_forwarding_shared_entries_limit",
        "shared_transient_entries_limit",
    ),
    ("http_access2", "adapted_http_access"),
    ("icap_send_client_ip", "adaptation_send_client_ip"),
    ("icap_send_client_username", "adaptation_send_username"),
    ("icap_uses_indirect_client", "adaptation_uses_indirect_client"),
    ("incoming_http_average", "incoming_tcp_average"),
    ("incoming_icp_average", "incoming_udp_average"),
    ("min_http_poll_cnt", "min_tcp_poll_cnt"),
    ("min_icp_poll_cnt", "min_udp_poll_cnt"),
    ("max_filedesc", "max_filedescriptors"),
    ("tcp_outgoing_ds", "tcp_outgoing_tos"),
    ("tcp_outgoing_dscp", "tcp_outgoing_tos"),
    ("clientside_mark", "mark_client_packet"),
    ("udp_port", "icp_port"),
    ("ascii_port", "ftp_port"),
    ("header_replace", "request_header_replace"),
];

const CACHE: Class = Class::Caching("hopproxy does not cache");
const ICP: Class =
    Class::Caching("ICP, HTCP, multicast and netdb exchange cache hits between caches; hopproxy has no cache");
const DIGEST: Class = Class::Caching("cache digests describe a cache's contents; hopproxy has no cache");
const MGR: Class = Class::Caching("cache-manager pages and alarms; hopproxy exports its metrics instead");
const SNMP: Class = Class::Caching("Squid's SNMP agent reports cache statistics; hopproxy exports its metrics instead");
const FTP_PAGES: Class = Class::Caching("FTP listing pages and icons; hopproxy does not speak FTP");
const ERR_PAGES: Class =
    Class::Caching("Squid's HTML error pages; hopproxy answers errors with short text bodies and Proxy-Status");
const PROCESS: Class = Class::Caching("Squid's process and memory tuning; hopproxy is one multi-threaded process");
const POLL: Class = Class::Caching("Squid's event-loop tuning; hopproxy uses the kernel's readiness events");
const DNS_CACHE: Class = Class::Caching("Squid's DNS cache tuning; hopproxy's resolver caches by record TTL");
const PCONN: Class = Class::Caching("persistent-connection tuning; hopproxy keeps and times out connections itself");
const MAIL: Class = Class::Caching("Squid mails the cache administrator when it dies; hopproxy sends no e-mail");
const ANNOUNCE: Class = Class::Caching("cache announcements to a registry; hopproxy does not announce itself");

const OBSOLETE_REMOVE: Class = Class::Obsolete("obsolete: Squid 5.7 ignores it (remove this line)");
const OBSOLETE_SQUID3: Class = Class::Obsolete("obsolete: \"not yet supported by Squid-3\"; Squid 5.7 ignores it");
const OBSOLETE_LOG: Class =
    Class::Obsolete("obsolete: Squid 5.7 ignores it; use an access_log line with a format and ACLs");
const OBSOLETE_TLS: Class =
    Class::Obsolete("obsolete: Squid 5.7 ignores it; TLS to parents is set with cache_peer tls options");

const TLS_BUMP: Class = Class::Rejected(
    "hopproxy never decrypts TLS: CONNECT is tunnelled end to end. Filter HTTPS by destination with \
     dstdomain/dst/port ACLs in http_access instead",
);
const ADAPTATION: Class = Class::Rejected(
    "hopproxy does not adapt content (ICAP/eCAP). Filter with http_access ACLs instead, or chain \
     to a parent proxy that runs the service (cache_peer … parent)",
);
const HELPER: Class = Class::Rejected(
    "URL-rewriting helpers are not supported; authentication (auth_param basic program) and \
     external_acl_type helpers are. Express the rule with ACLs (dstdomain, url_regex) in \
     http_access and an external_acl_type helper instead, or keep Squid for this config",
);
const DELAY: Class = Class::Rejected(
    "hopproxy shapes what clients receive with delay_pools only; client_delay_* (what clients send) and \
     response_delay_pool are not supported. Use delay_pools/delay_class/delay_parameters/delay_access \
     instead, or Linux traffic control (tc) on the host",
);
const QOS: Class = Class::Rejected(
    "hopproxy sets no TOS/DSCP or netfilter marks. Mark its traffic with an nftables/iptables rule \
     (e.g. meta skuid or cgroup match) instead",
);
const INTERCEPT: Class = Class::Rejected(
    "hopproxy is an explicit forward proxy (interception and WCCP are out of scope): configure \
     clients to use its http_port (proxy settings, HTTP_PROXY/HTTPS_PROXY) instead",
);
const ACCEL: Class = Class::Rejected(
    "hopproxy is a forward proxy, not a reverse proxy/accelerator; put a reverse proxy \
     (e.g. nginx, HAProxy) in front of the origin instead",
);
const IDENT: Class = Class::Rejected(
    "ident (RFC 1413) lookups are not supported; identify users with proxy_auth (auth_param basic) instead",
);
const FTP: Class = Class::Rejected("hopproxy does not speak FTP; use an FTP client or server directly instead");
const CHROOT: Class = Class::Rejected(
    "hopproxy does not chroot itself; confine it with its systemd unit instead (RootDirectory=, \
     or ProtectSystem=strict as the packaged unit does)",
);
const AUTH_TUNING: Class = Class::Rejected(
    "only auth_param basic is supported (basic_ncsa_auth natively, any other program as helper \
     processes); its cache is set with auth_param basic credentialsttl instead",
);
const HEADER_RULES: Class = Class::Rejected(
    "adding header fields is not supported; request_header_replace / reply_header_replace \
     change an existing field instead",
);

/// Every Squid 5.7 directive (its squid.conf `TAG:` names) and hopproxy's own, with their class.
pub const DIRECTIVES: &[(&str, Class)] = &[
    // --- supported ---------------------------------------------------------------------
    ("include", Class::Supported),
    ("http_port", Class::Supported),
    ("https_port", Class::Supported),
    ("auth_param", Class::Supported),
    ("external_acl_type", Class::Supported),
    ("acl", Class::Supported),
    ("http_access", Class::Supported),
    ("never_direct", Class::Supported),
    ("always_direct", Class::Supported),
    ("cache_peer", Class::Supported),
    ("cache_peer_access", Class::Supported),
    ("access_log", Class::Supported),
    ("logformat", Class::Supported),
    ("hosts_file", Class::Supported),
    ("dns_nameservers", Class::Supported),
    ("dns_timeout", Class::Supported),
    ("visible_hostname", Class::Supported),
    ("via", Class::Supported),
    ("forwarded_for", Class::Supported),
    ("connect_timeout", Class::Supported),
    ("peer_connect_timeout", Class::Supported),
    ("read_timeout", Class::Supported),
    ("write_timeout", Class::Supported),
    ("request_start_timeout", Class::Supported),
    ("request_timeout", Class::Supported),
    ("client_lifetime", Class::Supported),
    ("shutdown_lifetime", Class::Supported),
    ("request_header_max_size", Class::Supported),
    ("pid_filename", Class::Supported),
    ("tcp_outgoing_address", Class::Supported),
    ("strip_query_terms", Class::Supported),
    ("nonhierarchical_direct", Class::Supported),
    ("prefer_direct", Class::Supported),
    ("max_filedescriptors", Class::Supported),
    ("client_ip_max_connections", Class::Supported),
    ("logfile_rotate", Class::Supported),
    ("deny_info", Class::Supported),
    ("http_reply_access", Class::Supported),
    ("follow_x_forwarded_for", Class::Supported),
    ("cache_log", Class::Supported),
    ("debug_options", Class::Supported),
    ("delay_pools", Class::Supported),
    ("delay_class", Class::Supported),
    ("delay_parameters", Class::Supported),
    ("delay_access", Class::Supported),
    ("delay_initial_bucket_level", Class::Supported),
    (EXT_MAX_CLIENT_CONNECTIONS, Class::Supported),
    (EXT_METRICS_PORT, Class::Supported),
    ("ssl_bump", Class::Supported),
    ("on_unsupported_protocol", Class::Supported),
    (EXT_TUNNEL_SNI_MUST_MATCH, Class::Supported),
    // --- supported for Squid's default value -------------------------------------------
    (
        "half_closed_clients",
        Class::DefaultOnly {
            default: "off",
            instead: "hopproxy closes a connection when the client half-closes it, as Squid's default 'off' does",
        },
    ),
    (
        "acl_uses_indirect_client",
        Class::DefaultOnly {
            default: "on",
            instead: "hopproxy always uses the indirect client (follow_x_forwarded_for) here, as Squid's default does",
        },
    ),
    (
        "log_uses_indirect_client",
        Class::DefaultOnly {
            default: "on",
            instead: "hopproxy always uses the indirect client (follow_x_forwarded_for) here, as Squid's default does",
        },
    ),
    (
        "delay_pool_uses_indirect_client",
        Class::DefaultOnly {
            default: "on",
            instead: "hopproxy always uses the indirect client (follow_x_forwarded_for) here, as Squid's default does",
        },
    ),
    (
        "adaptation_uses_indirect_client",
        Class::DefaultOnly {
            default: "on",
            instead: "hopproxy always uses the indirect client (follow_x_forwarded_for) here, as Squid's default does",
        },
    ),
    (
        "tproxy_uses_indirect_client",
        Class::DefaultOnly {
            default: "off",
            instead: "hopproxy does no TPROXY spoofing",
        },
    ),
    (
        "log_mime_hdrs",
        Class::DefaultOnly {
            default: "off",
            instead: "log headers with a logformat using %>h / %<h instead",
        },
    ),
    (
        "uri_whitespace",
        Class::DefaultOnly {
            default: "strip|deny",
            instead: "hopproxy refuses a URI with whitespace (400), as 'deny' does; Squid's default 'strip' is \
                      accepted as the absence of the line is",
        },
    ),
    (
        "check_hostnames",
        Class::DefaultOnly {
            default: "off",
            instead: "deny odd host names with a dstdom_regex ACL instead",
        },
    ),
    (
        "client_dst_passthru",
        Class::DefaultOnly {
            default: "on",
            instead: "hopproxy has no interception ports, for which alone this matters",
        },
    ),
    (
        "host_verify_strict",
        Class::DefaultOnly {
            default: "off",
            instead: "hopproxy has no interception ports, for which alone this matters",
        },
    ),
    (
        "configuration_includes_quoted_values",
        Class::DefaultOnly {
            default: "off",
            instead: "hopproxy reads \"quoted\" ACL values as file names, as Squid's default does",
        },
    ),
    (
        "dns_defnames",
        Class::DefaultOnly {
            default: "off",
            instead: "write fully qualified names in URLs instead",
        },
    ),
    (
        "dns_multicast_local",
        Class::DefaultOnly {
            default: "off",
            instead: "map .local names in a hosts_file instead",
        },
    ),
    (
        "ignore_unknown_nameservers",
        Class::DefaultOnly {
            default: "on",
            instead: "hopproxy accepts answers only from the servers it asked",
        },
    ),
    (
        "allow_underscore",
        Class::DefaultOnly {
            default: "on",
            instead: "deny such names with a dstdom_regex ACL instead",
        },
    ),
    (
        "relaxed_header_parser",
        Class::DefaultOnly {
            default: "on|off",
            instead: "hopproxy parses request heads strictly, as 'off' does; Squid's default 'on' is accepted \
                      as the absence of the line is",
        },
    ),
    (
        "ssl_unclean_shutdown",
        Class::DefaultOnly {
            default: "off",
            instead: "hopproxy never terminates TLS for clients",
        },
    ),
    (
        "pipeline_prefetch",
        Class::DefaultOnly {
            default: "0",
            instead: "hopproxy answers pipelined requests one at a time",
        },
    ),
    // --- ignored: caching and the machinery around it ---------------------------------
    ("cache", CACHE),
    ("cache_dir", CACHE),
    ("cache_mem", CACHE),
    ("refresh_pattern", CACHE),
    ("maximum_object_size", CACHE),
    ("minimum_object_size", CACHE),
    ("maximum_object_size_in_memory", CACHE),
    ("memory_cache_shared", CACHE),
    ("memory_cache_mode", CACHE),
    ("memory_replacement_policy", CACHE),
    ("cache_replacement_policy", CACHE),
    ("store_dir_select_algorithm", CACHE),
    ("max_open_disk_fds", CACHE),
    ("cache_swap_low", CACHE),
    ("cache_swap_high", CACHE),
    ("cache_swap_state", CACHE),
    ("cache_store_log", CACHE),
    ("store_objects_per_bucket", CACHE),
    ("store_avg_object_size", CACHE),
    ("max_stale", CACHE),
    ("quick_abort_min", CACHE),
    ("quick_abort_max", CACHE),
    ("quick_abort_pct", CACHE),
    ("negative_ttl", CACHE),
    ("range_offset_limit", CACHE),
    ("minimum_expiry_time", CACHE),
    ("send_hit", CACHE),
    ("store_miss", CACHE),
    ("vary_ignore_expire", CACHE),
    ("collapsed_forwarding", CACHE),
    ("collapsed_forwarding_access", CACHE),
    ("shared_transient_entries_limit", CACHE),
    ("cache_miss_revalidate", CACHE),
    ("refresh_all_ims", CACHE),
    ("reload_into_ims", CACHE),
    ("offline_mode", CACHE),
    ("diskd_program", CACHE),
    ("unlinkd_program", CACHE),
    ("store_id_program", CACHE),
    ("store_id_extras", CACHE),
    ("store_id_children", CACHE),
    ("store_id_access", CACHE),
    ("store_id_bypass", CACHE),
    ("read_ahead_gap", CACHE),
    (
        "coredump_dir",
        Class::Caching("Squid's working directory for cache core dumps; hopproxy does not change directory"),
    ),
    ("digest_generation", DIGEST),
    ("digest_bits_per_entry", DIGEST),
    ("digest_rebuild_period", DIGEST),
    ("digest_rewrite_period", DIGEST),
    ("digest_swapout_chunk_size", DIGEST),
    ("digest_rebuild_chunk_percentage", DIGEST),
    ("icp_port", ICP),
    ("htcp_port", ICP),
    ("icp_access", ICP),
    ("htcp_access", ICP),
    ("htcp_clr_access", ICP),
    ("log_icp_queries", ICP),
    ("icp_hit_stale", ICP),
    ("icp_query_timeout", ICP),
    ("maximum_icp_query_timeout", ICP),
    ("minimum_icp_query_timeout", ICP),
    ("mcast_icp_query_timeout", ICP),
    ("mcast_groups", ICP),
    ("mcast_miss_addr", ICP),
    ("mcast_miss_ttl", ICP),
    ("mcast_miss_port", ICP),
    ("mcast_miss_encode_key", ICP),
    ("query_icmp", ICP),
    ("netdb_filename", ICP),
    ("netdb_low", ICP),
    ("netdb_high", ICP),
    ("netdb_ping_period", ICP),
    ("test_reachability", ICP),
    ("background_ping_rate", ICP),
    ("udp_incoming_address", ICP),
    ("udp_outgoing_address", ICP),
    ("pinger_enable", ICP),
    ("pinger_program", ICP),
    ("minimum_direct_hops", ICP),
    ("minimum_direct_rtt", ICP),
    (
        "neighbor_type_domain",
        Class::Caching("sibling/parent roles per domain for cache hits; hopproxy forwards to parents only"),
    ),
    (
        "dead_peer_timeout",
        Class::Caching("ICP peer liveness; hopproxy probes down parents in the background instead"),
    ),
    ("snmp_port", SNMP),
    ("snmp_access", SNMP),
    ("snmp_incoming_address", SNMP),
    ("snmp_outgoing_address", SNMP),
    ("cache_mgr", MGR),
    ("cachemgr_passwd", MGR),
    ("stats_collection", MGR),
    ("client_db", MGR),
    ("high_response_time_warning", MGR),
    ("high_page_fault_warning", MGR),
    ("high_memory_warning", MGR),
    ("mail_from", MAIL),
    ("mail_program", MAIL),
    ("announce_period", ANNOUNCE),
    ("announce_host", ANNOUNCE),
    ("announce_file", ANNOUNCE),
    ("announce_port", ANNOUNCE),
    ("mime_table", FTP_PAGES),
    ("icon_directory", FTP_PAGES),
    ("short_icon_urls", FTP_PAGES),
    ("global_internal_static", FTP_PAGES),
    ("error_directory", ERR_PAGES),
    ("error_default_language", ERR_PAGES),
    ("error_log_languages", ERR_PAGES),
    ("err_page_stylesheet", ERR_PAGES),
    ("err_html_text", ERR_PAGES),
    ("email_err_data", ERR_PAGES),
    ("httpd_suppress_version_string", ERR_PAGES),
    ("memory_pools", PROCESS),
    ("memory_pools_limit", PROCESS),
    ("workers", PROCESS),
    ("cpu_affinity_map", PROCESS),
    ("shared_memory_locking", PROCESS),
    ("hopeless_kid_revival_delay", PROCESS),
    ("sleep_after_fork", PROCESS),
    ("windows_ipaddrchangemonitor", PROCESS),
    (
        "umask",
        Class::Caching("mode of Squid's cache and log files; hopproxy creates files with the process umask"),
    ),
    ("incoming_udp_average", POLL),
    ("incoming_tcp_average", POLL),
    ("incoming_dns_average", POLL),
    ("min_udp_poll_cnt", POLL),
    ("min_dns_poll_cnt", POLL),
    ("min_tcp_poll_cnt", POLL),
    ("accept_filter", POLL),
    ("tcp_recv_bufsize", POLL),
    ("ipcache_size", DNS_CACHE),
    ("ipcache_low", DNS_CACHE),
    ("ipcache_high", DNS_CACHE),
    ("fqdncache_size", DNS_CACHE),
    ("positive_dns_ttl", DNS_CACHE),
    ("negative_dns_ttl", DNS_CACHE),
    ("dns_retransmit_interval", DNS_CACHE),
    ("dns_packet_max", DNS_CACHE),
    ("client_persistent_connections", PCONN),
    ("server_persistent_connections", PCONN),
    ("persistent_connection_after_error", PCONN),
    ("detect_broken_pconn", PCONN),
    ("pconn_lifetime", PCONN),
    ("client_idle_pconn_timeout", PCONN),
    ("server_idle_pconn_timeout", PCONN),
    ("server_pconn_for_nonretriable", PCONN),
    ("happy_eyeballs_connect_timeout", PCONN),
    ("happy_eyeballs_connect_gap", PCONN),
    ("happy_eyeballs_connect_limit", PCONN),
    (
        "logfile_daemon",
        Class::Caching("Squid's log-writing helper; hopproxy writes access logs itself"),
    ),
    (
        "buffered_logs",
        Class::Caching("Squid's log buffering; hopproxy writes whole records off the relaying path"),
    ),
    (
        "authenticate_cache_garbage_interval",
        Class::Caching("Squid's credential-cache sweeping; hopproxy expires credentials by credentialsttl"),
    ),
    // --- ignored, as Squid 5.7 ignores them (obsolete) ---------------------------------
    ("broken_vary_encoding", OBSOLETE_SQUID3),
    ("cache_vary", OBSOLETE_SQUID3),
    ("error_map", OBSOLETE_SQUID3),
    ("external_refresh_check", OBSOLETE_SQUID3),
    ("location_rewrite_program", OBSOLETE_SQUID3),
    ("location_rewrite_access", OBSOLETE_SQUID3),
    ("location_rewrite_children", OBSOLETE_SQUID3),
    ("location_rewrite_concurrency", OBSOLETE_SQUID3),
    ("refresh_stale_hit", OBSOLETE_SQUID3),
    ("ie_refresh", OBSOLETE_REMOVE),
    ("dns_v4_first", OBSOLETE_REMOVE),
    ("dns_v4_fallback", OBSOLETE_REMOVE),
    ("balance_on_multiple_ip", OBSOLETE_REMOVE),
    ("dns_testnames", OBSOLETE_REMOVE),
    ("extension_methods", OBSOLETE_REMOVE),
    ("upgrade_http0.9", OBSOLETE_REMOVE),
    ("chunked_request_body_max_size", OBSOLETE_REMOVE),
    ("ignore_expect_100", OBSOLETE_REMOVE),
    ("ignore_ims_on_miss", OBSOLETE_REMOVE),
    ("server_http11", OBSOLETE_REMOVE),
    ("ftp_list_width", OBSOLETE_REMOVE),
    ("update_headers", OBSOLETE_REMOVE),
    ("url_rewrite_concurrency", OBSOLETE_REMOVE),
    ("hierarchy_stoplist", OBSOLETE_REMOVE),
    ("maximum_single_addr_tries", OBSOLETE_REMOVE),
    ("incoming_rate", OBSOLETE_REMOVE),
    ("zero_buffers", OBSOLETE_REMOVE),
    ("httpd_accel_no_pmtu_disc", OBSOLETE_REMOVE),
    ("wais_relay_host", OBSOLETE_REMOVE),
    ("wais_relay_port", OBSOLETE_REMOVE),
    ("zph_local", OBSOLETE_REMOVE),
    ("zph_mode", OBSOLETE_REMOVE),
    ("zph_option", OBSOLETE_REMOVE),
    ("zph_parent", OBSOLETE_REMOVE),
    ("zph_sibling", OBSOLETE_REMOVE),
    ("log_ip_on_direct", OBSOLETE_LOG),
    ("log_fqdn", OBSOLETE_LOG),
    ("log_access", OBSOLETE_LOG),
    ("log_icap", OBSOLETE_LOG),
    ("emulate_httpd_log", OBSOLETE_LOG),
    ("forward_log", OBSOLETE_LOG),
    ("referer_log", OBSOLETE_LOG),
    ("referrer_log", OBSOLETE_LOG),
    ("useragent_log", OBSOLETE_LOG),
    (
        "cache_peer_domain",
        Class::Obsolete("obsolete: Squid 5.7 ignores it; restrict a parent with dstdomain ACLs in cache_peer_access"),
    ),
    (
        "cache_host_domain",
        Class::Obsolete("obsolete: Squid 5.7 ignores it; restrict a parent with dstdomain ACLs in cache_peer_access"),
    ),
    (
        "header_access",
        Class::Obsolete("obsolete: Squid 5.7 ignores it; use request_header_access or reply_header_access"),
    ),
    ("sslproxy_cafile", OBSOLETE_TLS),
    ("sslproxy_capath", OBSOLETE_TLS),
    ("sslproxy_cipher", OBSOLETE_TLS),
    ("sslproxy_client_certificate", OBSOLETE_TLS),
    ("sslproxy_client_key", OBSOLETE_TLS),
    ("sslproxy_flags", OBSOLETE_TLS),
    ("sslproxy_options", OBSOLETE_TLS),
    ("sslproxy_version", OBSOLETE_TLS),
    // --- rejected, with what to use instead --------------------------------------------
    (
        "tls_outgoing_options",
        Class::Rejected(
            "TLS to origins is end to end between client and origin; for TLS to a parent use the cache_peer tls options (tls-cafile=, tls-cert=, tls-key=, tls-domain=)",
        ),
    ),
    ("ssl_engine", TLS_BUMP),
    ("sslproxy_session_ttl", TLS_BUMP),
    ("sslproxy_session_cache_size", TLS_BUMP),
    ("sslproxy_foreign_intermediate_certs", TLS_BUMP),
    ("sslproxy_cert_sign_hash", TLS_BUMP),
    ("sslproxy_cert_error", TLS_BUMP),
    ("sslproxy_cert_sign", TLS_BUMP),
    ("sslproxy_cert_adapt", TLS_BUMP),
    ("sslpassword_program", TLS_BUMP),
    ("sslcrtd_program", TLS_BUMP),
    ("sslcrtd_children", TLS_BUMP),
    ("sslcrtvalidator_program", TLS_BUMP),
    ("sslcrtvalidator_children", TLS_BUMP),
    ("icap_enable", ADAPTATION),
    ("icap_connect_timeout", ADAPTATION),
    ("icap_io_timeout", ADAPTATION),
    ("icap_service_failure_limit", ADAPTATION),
    ("icap_service_revival_delay", ADAPTATION),
    ("icap_preview_enable", ADAPTATION),
    ("icap_preview_size", ADAPTATION),
    ("icap_206_enable", ADAPTATION),
    ("icap_default_options_ttl", ADAPTATION),
    ("icap_persistent_connections", ADAPTATION),
    ("adaptation_send_client_ip", ADAPTATION),
    ("adaptation_send_username", ADAPTATION),
    ("icap_client_username_header", ADAPTATION),
    ("icap_client_username_encode", ADAPTATION),
    ("icap_service", ADAPTATION),
    ("icap_class", ADAPTATION),
    ("icap_access", ADAPTATION),
    ("icap_log", ADAPTATION),
    ("icap_retry", ADAPTATION),
    ("icap_retry_limit", ADAPTATION),
    ("ecap_enable", ADAPTATION),
    ("ecap_service", ADAPTATION),
    ("loadable_modules", ADAPTATION),
    ("adaptation_service_set", ADAPTATION),
    ("adaptation_service_chain", ADAPTATION),
    ("adaptation_access", ADAPTATION),
    ("adaptation_service_iteration_limit", ADAPTATION),
    ("adaptation_masterx_shared_names", ADAPTATION),
    ("adaptation_meta", ADAPTATION),
    ("esi_parser", ADAPTATION),
    (
        "adapted_http_access",
        Class::Rejected(
            "hopproxy does not adapt requests, so adapted_http_access would see them unchanged: put these rules in http_access instead",
        ),
    ),
    ("url_rewrite_program", HELPER),
    ("url_rewrite_children", HELPER),
    ("url_rewrite_host_header", HELPER),
    ("url_rewrite_access", HELPER),
    ("url_rewrite_bypass", HELPER),
    ("url_rewrite_extras", HELPER),
    ("url_rewrite_timeout", HELPER),
    ("client_delay_pools", DELAY),
    ("client_delay_initial_bucket_level", DELAY),
    ("client_delay_parameters", DELAY),
    ("client_delay_access", DELAY),
    ("response_delay_pool", DELAY),
    ("response_delay_pool_access", DELAY),
    ("tcp_outgoing_tos", QOS),
    ("clientside_tos", QOS),
    ("tcp_outgoing_mark", QOS),
    ("mark_client_packet", QOS),
    ("mark_client_connection", QOS),
    ("qos_flows", QOS),
    ("wccp_router", INTERCEPT),
    ("wccp2_router", INTERCEPT),
    ("wccp_version", INTERCEPT),
    ("wccp2_rebuild_wait", INTERCEPT),
    ("wccp2_forwarding_method", INTERCEPT),
    ("wccp2_return_method", INTERCEPT),
    ("wccp2_assignment_method", INTERCEPT),
    ("wccp2_service", INTERCEPT),
    ("wccp2_service_info", INTERCEPT),
    ("wccp2_weight", INTERCEPT),
    ("wccp_address", INTERCEPT),
    ("wccp2_address", INTERCEPT),
    ("spoof_client_ip", INTERCEPT),
    ("httpd_accel_surrogate_id", ACCEL),
    ("http_accel_surrogate_remote", ACCEL),
    ("ident_lookup_access", IDENT),
    ("ident_timeout", IDENT),
    ("ftp_port", FTP),
    ("ftp_user", FTP),
    ("ftp_passive", FTP),
    ("ftp_epsv_all", FTP),
    ("ftp_epsv", FTP),
    ("ftp_eprt", FTP),
    ("ftp_sanitycheck", FTP),
    ("ftp_telnet_protocol", FTP),
    ("ftp_client_idle_timeout", FTP),
    ("proxy_protocol_access", Class::Supported),
    ("cache_effective_user", Class::Supported),
    ("cache_effective_group", Class::Supported),
    ("chroot", CHROOT),
    ("authenticate_ttl", AUTH_TUNING),
    ("authenticate_ip_ttl", AUTH_TUNING),
    ("auth_schemes", AUTH_TUNING),
    ("request_header_access", Class::Supported),
    ("reply_header_access", Class::Supported),
    ("request_header_replace", Class::Supported),
    ("reply_header_replace", Class::Supported),
    ("request_header_add", HEADER_RULES),
    ("reply_header_add", HEADER_RULES),
    (
        "miss_access",
        Class::Rejected("hopproxy has no cache, so every request is a miss: put these rules in http_access instead"),
    ),
    (
        "note",
        Class::Rejected("transaction annotations are not supported yet; use ACLs directly in the rules instead"),
    ),
    (
        "reply_body_max_size",
        Class::Rejected("body size limits are not supported yet; limit sizes at the origin or a parent proxy instead"),
    ),
    (
        "request_body_max_size",
        Class::Rejected("body size limits are not supported yet; limit sizes at the origin or a parent proxy instead"),
    ),
    (
        "client_request_buffer_max_size",
        Class::Rejected("hopproxy's request buffers are bounded by request_header_max_size; use that instead"),
    ),
    (
        "reply_header_max_size",
        Class::Rejected(
            "reply header limits are not supported yet; remove the line (hopproxy relays reply heads of any size)",
        ),
    ),
    (
        "broken_posts",
        Class::Rejected("not supported; fix the client, or keep Squid for this config"),
    ),
    (
        "request_entities",
        Class::Rejected("hopproxy forwards bodies on GET/HEAD as Squid's 'on' does; remove the line"),
    ),
    (
        "force_request_body_continuation",
        Class::Rejected("hopproxy relays Expect: 100-continue end to end; remove the line"),
    ),
    (
        "http_upgrade_request_protocols",
        Class::Rejected(
            "HTTP Upgrade through plain forwarding is not supported; use CONNECT tunnels (e.g. wss:// through CONNECT) instead",
        ),
    ),
    (
        "client_netmask",
        Class::Rejected("client address masking in logs is not supported yet; remove the line or post-process the log"),
    ),
    (
        "unique_hostname",
        Class::Rejected("forwarding loops are detected by visible_hostname in Via; set visible_hostname instead"),
    ),
    (
        "hostname_aliases",
        Class::Rejected("forwarding loops are detected by visible_hostname in Via; set visible_hostname instead"),
    ),
    (
        "append_domain",
        Class::Rejected("write fully qualified names, or map short names in a hosts_file instead"),
    ),
    (
        "as_whois_server",
        Class::Rejected("AS-number ACLs are not supported; use dst ACLs with the networks instead"),
    ),
    (
        "eui_lookup",
        Class::Rejected("MAC (arp/eui64) ACLs are not supported; use src ACLs instead"),
    ),
    ("forward_timeout", Class::Supported),
    ("forward_max_tries", Class::Supported),
    ("connect_retries", Class::Supported),
    ("retry_on_error", Class::Supported),
];

/// The current name for `name` when it is one of Squid's old aliases, else `name` itself.
pub fn canonical(name: &str) -> &str {
    ALIASES
        .iter()
        .find(|(old, _)| *old == name)
        .map_or(name, |(_, new)| *new)
}

/// The class of a directive (after alias resolution), or `None` when neither Squid 5.7 nor
/// hopproxy knows the name.
pub fn class_of(name: &str) -> Option<Class> {
    let name = canonical(name);
    DIRECTIVES.iter().find(|(n, _)| *n == name).map(|(_, c)| *c)
}

/// Names with an effect in hopproxy (supported, or supported for Squid's default value).
pub fn supported() -> impl Iterator<Item = &'static str> {
    DIRECTIVES
        .iter()
        .filter(|(_, c)| matches!(c, Class::Supported))
        .map(|(n, _)| *n)
}

/// Every name the parser knows, for did-you-mean hints.
pub fn all_names() -> impl Iterator<Item = &'static str> {
    DIRECTIVES
        .iter()
        .map(|(n, _)| *n)
        .chain(ALIASES.iter().map(|(n, _)| *n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_has_one_class() {
        let mut seen = std::collections::HashSet::new();
        for (name, _) in DIRECTIVES {
            assert!(seen.insert(*name), "{name} listed twice");
        }
        for (old, new) in ALIASES {
            assert!(!seen.contains(old), "alias {old} is also a directive");
            assert!(seen.contains(new), "alias {old} points at unknown {new}");
        }
    }

    #[test]
    fn every_rejection_says_what_to_do_instead() {
        for (name, class) in DIRECTIVES {
            // DefaultOnly hints get "remove the line or write the default" appended.
            if let Class::Rejected(text) = class {
                assert!(
                    ["instead", "use", "remove", "keep Squid", "set "]
                        .iter()
                        .any(|w| text.contains(w))
                        || text.contains("as Squid"),
                    "{name}: {text}"
                );
            }
        }
    }
}
