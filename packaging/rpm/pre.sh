getent group hopproxy >/dev/null || groupadd --system hopproxy
getent passwd hopproxy >/dev/null || useradd --system --gid hopproxy --no-create-home \
    --home-dir /nonexistent --shell /sbin/nologin --comment "hopproxy forward proxy" hopproxy
exit 0
