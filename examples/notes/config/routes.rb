Rails.application.routes.draw do
  resources :notes, only: %i[index show create]
  root "notes#index"
end
