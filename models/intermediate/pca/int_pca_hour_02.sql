{{ pca_hour_model() }}
