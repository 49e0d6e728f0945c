# Reads target a through a target: context, and its own context b.
FROM busybox
COPY --from=lib /f.txt /lib.txt
COPY f.txt /own.txt
