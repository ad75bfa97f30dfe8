# The bo1site image. By default it runs the Procfile's web line; docker-compose.yml runs the
# release step and the worker from the same image with the Procfile's other lines.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_DEBUG=0 \
    PORT=8000

WORKDIR /app
# An unprivileged user that owns /app, so collectstatic can write staticfiles/ there.
RUN useradd --create-home --uid 10001 bo1 && chown bo1:bo1 /app

# Dependencies first, so a code change does not reinstall them (constraints.txt pins the rest).
COPY requirements/ requirements/
RUN pip install -r requirements/base.txt

COPY --chown=bo1:bo1 . .
USER bo1
# Static files are baked into the image and served by whitenoise.
RUN python manage.py collectstatic --noinput

EXPOSE 8000
CMD ["sh", "-c", "gunicorn bo1site.asgi:application --worker-class bo1site.serving.worker.FairUvicornWorker --bind 0.0.0.0:${PORT:-8000} --workers ${WEB_CONCURRENCY:-2} --graceful-timeout 10 --access-logfile -"]
