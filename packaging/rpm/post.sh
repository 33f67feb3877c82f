systemctl daemon-reload >/dev/null 2>&1 || :
if [ "$1" -eq 1 ]; then
    systemctl preset hopproxy.service >/dev/null 2>&1 || :
fi
