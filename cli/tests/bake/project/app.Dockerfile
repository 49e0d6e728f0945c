# Built on top of the target "one" (a target: context named base).
FROM base
ARG GREETING
RUN echo "$GREETING from app" > /app.txt
