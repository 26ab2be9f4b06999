# The project's Airflow image: the official image of our Airflow and Python versions plus our
# pinned set (requirements.txt with constraints.txt, the same install as `make install`).
# docker-compose.yaml builds it; tests/unit/test_compose.py keeps the tag equal to the pins.
# The slim variant (Airflow core without the extra providers): the regular image ships providers whose
# requirements contradict our lock (the FAB provider's flask-appbuilder 5.3.0 needs python-dateutil<3,
# we pin 4.0.0). On slim, our pinned set is the whole environment: the one `pip check` passes and CI tests.
FROM apache/airflow:slim-3.3.2-python3.11

# The data folder exists in the image so a fresh named volume mounted on it starts owned by airflow.
USER root
RUN mkdir -p /opt/postsales/data && chown -R airflow:0 /opt/postsales
USER airflow

# pip runs as the image's airflow user (the official way to extend it). requirements.txt pins
# apache-airflow itself, so pip cannot move Airflow; `pip check` fails the build on a conflict
# with anything the base image ships, instead of a task failing at runtime.
COPY --chown=airflow:0 requirements.txt constraints.txt /opt/postsales/
RUN pip install --no-cache-dir -r /opt/postsales/requirements.txt -c /opt/postsales/constraints.txt \
    && pip check

# The code is baked in so the image runs on a host without a checkout (a worker elsewhere);
# docker-compose.yaml bind-mounts the same folders over it for development.
COPY --chown=airflow:0 dags /opt/postsales/dags
COPY --chown=airflow:0 plugins /opt/postsales/plugins
COPY --chown=airflow:0 include /opt/postsales/include
COPY --chown=airflow:0 deploy/airflow-init.sh /opt/postsales/deploy/airflow-init.sh

ENV POSTSALES_HOME=/opt/postsales \
    POSTSALES_DATA_DIR=/opt/postsales/data \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/postsales/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/postsales/plugins \
    PYTHONPATH=/opt/postsales/plugins \
    GX_ANALYTICS_ENABLED=false \
    AIRFLOW__OPENLINEAGE__EXTRACTORS=postsales.lineage.extractor.PostsalesExtractor
